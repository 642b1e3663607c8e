/*
 * Model checkpoints as safetensors: every tensor of the parameter table under its
 * PyTorch state_dict name and shape (float32), plus `__metadata__` with the format tag,
 * model name, input size and cored version, and any caller keys. Loading matches by name
 * and shape and reports every missing, unexpected and mis-shaped name at once.
 * Tensors whose names start with "cored." are cored's own extra state (optimiser,
 * teacher statistics, ...) and are not model parameters.
 */
#ifndef CORED_CHECKPOINT_H
#define CORED_CHECKPOINT_H

#include "cored.h"
#include "io/safetensors.h"

#define CORED_EXTRA_PREFIX "cored."

/* Extra tensors written along with the model (names must start with "cored."). */
typedef struct {
    const cored_st_out *tensors;
    int n;
} cored_extra_tensors;

/* Writes the model's parameters and buffers atomically to path. meta_kv: key, value pairs
   (n_meta of them) added to the standard keys: format=cored, model, input_size,
   cored_version. extra may be NULL. */
int cored_model_save(cored_model *m, const char *path, const char *const *meta_kv, int n_meta,
                     const cored_extra_tensors *extra, cored_error *err);

/* Loads parameters and buffers from an opened file into m. Every model tensor must be
   present with its shape; `num_batches_tracked` and "cored." tensors are ignored; any
   other name is unexpected. Non-finite values are refused. On failure m is unchanged. */
int cored_model_load_file(cored_model *m, const cored_st_file *f, cored_error *err);
/* Opens, validates and loads path. */
int cored_model_load(cored_model *m, const char *path, cored_error *err);

/* What initial weights (`cored train --init FILE`) give the classifier. */
typedef enum {
    CORED_INIT_HEAD_KEEP,  /* a complete checkpoint: every tensor, shapes as the model's */
    CORED_INIT_HEAD_RESET  /* a backbone: the file's classifier (any class count) is skipped and
                              the model's re-initialised (cored_model_init_head) */
} cored_init_head;

extern const char *const cored_init_head_names[]; /* "keep", "reset", NULL */
const char *cored_init_head_name(cored_init_head h);
int cored_init_head_parse(const char *s);            /* -1 when unknown */

/* Loads initial weights from path. KEEP is cored_model_load, with a hint to pass
   --init-head reset when the classifier alone does not fit. RESET loads every other tensor
   by name, each with the model's shape (errors name the file and the tensors), accepts the
   file's classifier with any number of classes K ([K, C] weight with the model's C, [K]
   bias) or none, and re-initialises the model's classifier from seed. On failure the
   parameters are unchanged. */
int cored_model_load_init(cored_model *m, const char *path, cored_init_head head, uint64_t seed,
                          cored_error *err);

/* Reads the model name and input size from a checkpoint's metadata (size 0 when absent).
   arch receives at most n-1 characters. */
int cored_checkpoint_peek(const char *path, char *arch, size_t n, int *size, cored_error *err);

/* The same from an opened checkpoint, with the tasks it has learned, comma-separated (""
   when it does not say; tasks may be NULL). */
void cored_checkpoint_info(const cored_st_file *f, char *arch, size_t n, int *size, char *tasks, size_t tn);

/* Copies the tensors "<prefix><param>" of f, one per trainable parameter of m, into a slab
   parallel to m's weights (optimiser state, EWC's Fisher). Returns 1 when they are there,
   0 when none is and !required, < 0 on error (one missing of several, another shape). */
int cored_checkpoint_load_slab(float *slab, const cored_st_file *f, cored_model *m, const char *prefix,
                               int required, cored_error *err);

#endif
