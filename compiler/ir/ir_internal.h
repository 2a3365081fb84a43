/* Private to the IR's own files (ir.c, ir_tensor.c): the node template every
 * constructor fills and ir_finish, which folds all-constant operands through
 * ir_eval_op or interns the node. Other passes build nodes through ir.h. */
#ifndef NODEC_IR_INTERNAL_H
#define NODEC_IR_INTERNAL_H

#include "ir.h"

#define IR_FAIL(...) INTERNAL_ERROR(__VA_ARGS__)

IrNode ir_node_template(IrOp op, IrShape shape, int nargs, IrNode **args);
IrNode *ir_finish(IrBuilder *b, IrNode *k);

/* ir_tensor.c: the tensor ops' values for ir_eval_op (n's operands' values in a). */
void ir_eval_tensor_op(const IrNode *n, const double *const *a, double *out);

#endif
