/*
 * Optimisers with PyTorch's update formulas (torch.optim.SGD, Adam, AdamW of 1.13), over
 * a flat parameter slab. Weight decay applies to every element, as with
 * model.parameters() in PyTorch.
 */
#ifndef CORED_OPTIM_H
#define CORED_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "cored.h"

typedef enum { CORED_OPT_SGD, CORED_OPT_ADAM, CORED_OPT_ADAMW } cored_opt_kind;

typedef struct {
    cored_opt_kind kind;
    float lr;
    float momentum;     /* SGD */
    int nesterov;       /* SGD; needs momentum > 0 */
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps; /* Adam/AdamW: PyTorch defaults 0.9, 0.999, 1e-8 */
} cored_optim_cfg;

typedef struct {
    cored_optim_cfg cfg;
    size_t n;
    float *m;       /* SGD momentum buffer / Adam first moment */
    float *v;       /* Adam second moment */
    uint64_t steps; /* updates done so far */
} cored_optim;

/* The names by kind: "sgd", "adam", "adamw" (NULL-terminated). */
extern const char *const cored_optim_names[];
/* Parses a name; -1 if unknown. */
int cored_optim_kind_parse(const char *s);
const char *cored_optim_kind_name(cored_opt_kind k);
/* Defaults: SGD lr 0.05 momentum 0.1, Adam betas (0.9, 0.999), eps 1e-8. */
cored_optim_cfg cored_optim_defaults(cored_opt_kind kind);

int cored_optim_create(cored_optim **out, const cored_optim_cfg *cfg, size_t n, cored_error *err);
void cored_optim_free(cored_optim *o);
/* One update of w (n floats) with gradient g. */
void cored_optim_step(cored_optim *o, float *w, const float *g);

#endif
