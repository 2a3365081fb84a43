/* Codegen-private: what llvm_codegen.c (nodes, kernels), llvm_emit.c (loops,
 * elementwise and shape ops), llvm_tensor.c (tensor ops) and llvm_matmul.c
 * (products, BLAS) share while
 * emitting one module: the kernel's plan (compiler/plan), the emitter's view of
 * each node's values, the builder state, and the emit helpers. It includes
 * <llvm-c/Core.h>, so only those four files include it (llvm_jit.c sees
 * llvm_jit_internal.h). */
#ifndef NODEC_CODEGEN_LLVM_INTERNAL_H
#define NODEC_CODEGEN_LLVM_INTERNAL_H

#include "llvm_jit.h"
#include "llvm_jit_internal.h"
#include "plan.h"

#include <llvm-c/Core.h>

#include <stdbool.h>

/* A node's values as the emitter reads them: element k of sample b is
 * ptr[b*bstride + k], or reg when every element equals it. */
typedef struct CgVal {
    LLVMValueRef ptr;
    LLVMValueRef reg;
    long bstride; /* 0: unbatched (the same for every sample) */
    int size;     /* elements per sample */
    int inl;      /* PLAN_INLINE: 1 + the node's topo index (its elements are computed on load) */
    int scope;    /* 1 + the work block holding it (fixed blocks, then per-sample ones), or 0 */
} CgVal;

/* One function to emit: the rhs (NdRhsFn, its outputs the states' rhs into
 * dydt) or a general kernel (NdKernelFn). */
typedef struct CgKernel {
    const char *name; /* the symbol */
    bool rhs;         /* NdRhsFn signature: reads y, p only; out0 is dydt */
    bool chunk;       /* the rhs or the plain vjp: may run the batch in chunks (cg_chunkable) */
    int nd;           /* doubles per sample in d */
    int n_outputs;
    const PlanOutput *outputs;
    const struct CgKernel *wraps; /* the vjp as a call of the fused rhs_vjp (no outputs) */
    long work_fixed, work_sample; /* set once emitted: the work the kernel itself needs */
} CgKernel;

typedef struct Cg {
    const IrModel *m;
    const CgKernel *k;
    Arena *arena;
    Plan plan;  /* the kernel's: its nodes in order and their homes (compiler/plan) */
    CgVal *val; /* by topo index */
    /* per work block: !alias.scope {its scope} and !noalias {every other block's}.
     * Blocks never overlap, so a loop that reads one buffer of work and writes
     * another needs no run-time overlap check to vectorise */
    LLVMValueRef *md_scope, *md_noalias;
    unsigned kind_scope, kind_noalias;

    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef bld;
    LLVMValueRef fn;
    /* t_real: a value of the model, double or (JitRequest.f32) float; t_gemm and
     * t_gemv: cblas_[ds]gemm and cblas_[ds]gemv of that type; t_kernel: NdKernelFn */
    LLVMTypeRef t_real, t_i64, t_i32, t_ptr, t_gemm, t_gemv, t_kernel;
    LLVMValueRef v_t, v_y, v_p, v_a, v_d, v_out[5], v_B, v_work, v_sample; /* v_out[2..4]: PlanOutput.dst */
    int nd; /* the kernel's d stride */
    bool wide; /* the host has AVX-512: let the vectoriser use it (cg_host_is_wide) */
    bool f32;  /* every kernel in single precision (JitRequest.f32) */
} Cg;

/* A counted loop i = 0 .. n-1, optionally carrying one t_real accumulator. */
typedef struct CgLoop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef i, acc, n;
    bool scalar; /* set after cg_loop_begin: tell the loop vectoriser to leave it */
} CgLoop;

/* ---- llvm_codegen.c ---- */

/* n's index in the kernel's topological order (cg->plan.order, .node, cg->val). */
int cg_topo(const Cg *cg, const IrNode *n);

/* ---- llvm_emit.c: small builders ---- */

LLVMValueRef cg_i64(Cg *cg, long v);
LLVMValueRef cg_i32(Cg *cg, long v);
LLVMValueRef cg_real(Cg *cg, double v); /* a t_real constant: v rounded to float in f32 */
LLVMValueRef cg_gep(Cg *cg, LLVMValueRef ptr, LLVMValueRef idx, const char *name);
LLVMValueRef cg_mul(Cg *cg, LLVMValueRef a, long c); /* a * c (i64), a itself when c is 1 */
LLVMValueRef cg_add(Cg *cg, LLVMValueRef a, LLVMValueRef b);
/* Element k of sample b (NULL: sample 0) of v: its register, its inlined
 * computation, or a load tagged with its work block's alias scope. */
LLVMValueRef cg_load(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k);
void cg_store(Cg *cg, const CgVal *v, LLVMValueRef b, LLVMValueRef k, LLVMValueRef x);
LLVMBasicBlockRef cg_block(Cg *cg, const char *name);
/* Opens `for (i = 0; i < n; i++)` (blocks b_<tag>_*), with a t_real accumulator
 * phi when acc_init is non-NULL; returns i. cg_loop_end closes it, feeding
 * acc_next to the accumulator (l->acc is then its final value). */
LLVMValueRef cg_loop_begin(Cg *cg, CgLoop *l, LLVMValueRef n, const char *tag,
                           LLVMValueRef acc_init);
void cg_loop_end(Cg *cg, CgLoop *l, LLVMValueRef acc_next);
LLVMValueRef cg_samples(Cg *cg, long bstride); /* B, or 1 for an unbatched value */
/* One alias scope per work block of the planned kernel (cg->md_scope, md_noalias). */
void cg_alias_scopes(Cg *cg);

/* The loop nest b < samples (B, or 1 when bstride is 0), i < rows, j < cols
 * (blocks b_<tag>_b, _i, _j) of the grid ops, PAD and inline products;
 * cg_grid_end closes it. */
typedef struct CgGrid {
    CgLoop lb, li, lj;
    LLVMValueRef b, i, j;
} CgGrid;
void cg_grid_begin(Cg *cg, CgGrid *g, long bstride, long rows, long cols, const char *tag);
void cg_grid_end(Cg *cg, CgGrid *g);

/* ---- llvm_emit.c: ops ---- */

/* One element of n from its operands' elements x; n == NULL is a copy of x[0]. */
LLVMValueRef cg_element_op(Cg *cg, const IrNode *n, LLVMValueRef *x);
/* out[b, k] = n(args[.][b, k]) over every sample and element (n == NULL: a copy),
 * scalars broadcasting; one flat loop over B*size when the layouts allow. */
void cg_emit_map(Cg *cg, const IrNode *n, const CgVal *out, int nargs, const CgVal *const *args,
                 const char *tag);
/* The shape-changing ops into out: TRANSPOSE, OUTER and SLICE copies (grid), PAD,
 * SUM, CONCAT and STACK (join). */
void cg_emit_grid(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);
void cg_emit_pad(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);
void cg_emit_argmax(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);
void cg_emit_sum(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);
void cg_emit_join(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);

/* ---- llvm_tensor.c ---- */

/* The tensor ops into out (ir_ops.def): a RESHAPE that is not a view, IM2COL,
 * COL2IM, the pools and their transposes, SUMAXIS and BROADCAST, equal to
 * ir_eval_tensor_op bit for bit. */
void cg_emit_tensor(Cg *cg, const IrNode *n, const CgVal *out, const char *tag);

/* ---- llvm_matmul.c ---- */

/* C = A @ B into c: inline loops or BLAS by the crossover rule. */
void cg_emit_matmul(Cg *cg, const IrNode *n, const CgVal *c, const char *tag);
/* Output o, a fused OUTER (PK_FUSED) summed over the batch: U^T V. */
void cg_emit_outer_sum(Cg *cg, const PlanOutput *o, const char *tag);
/* Where output o starts: out + offset, or in the shared block out + B*ny + offset. */
LLVMValueRef cg_out_ptr(Cg *cg, const PlanOutput *o, const char *name);

#endif
