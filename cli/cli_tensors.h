/* Tensor files of the interop commands: `input` [N,3,S,S] and `labels` [N]. */
#ifndef CORED_CLI_TENSORS_H
#define CORED_CLI_TENSORS_H

#include "cored.h"
#include "io/safetensors.h"

/* Reads tensor `input` (any float dtype, NCHW, square) as float32; caller frees with
   cored_free. */
int cli_load_input(const char *path, float **out, int *n, int *size, cored_error *err);
/* Reads the integer tensor `name` [n] (integer or integral float dtype) with values in
   lo..hi; when absent: an error if required, else *out = NULL and 0. */
int cli_load_ints(const char *path, const char *name, int n, int lo, int hi, int required, int **out,
                  cored_error *err);
/* Reads tensor `labels` [n] (integer or integral float dtype, values 0/1). */
int cli_load_labels(const char *path, int n, int **out, cored_error *err);

#endif
