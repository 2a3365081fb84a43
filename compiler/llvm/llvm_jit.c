/* The JIT: llvm_codegen.c's module (the rhs and the derived kernels a request
 * asks for) -> verify -> O2 (new pass manager) -> ORC LLJIT -> the kernel table
 * the runtime calls. Every LLVM object is created
 * and released here: a JitModel owns its LLJIT (and through it the compiled
 * code), and each error path disposes what it made, so a compile under
 * LeakSanitizer leaves nothing behind. */
#include "llvm_jit.h"
#include "llvm_jit_internal.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* OpenBLAS's CBLAS entry points, as in cblas.h (its enums are passed as int;
 * <cblas.h> itself belongs to the runtime's BLAS wrapper). Referenced here so
 * the JIT'd code finds them even when nothing else in the binary calls BLAS. */
void cblas_dgemm(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
void cblas_dgemv(int order, int trans, int m, int n, double alpha, const double *a, int lda,
                 const double *x, int incx, double beta, double *y, int incy);
/* their single-precision twins, for JitRequest.f32 */
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);
void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                 const float *x, int incx, float beta, float *y, int incy);

struct JitModel {
    LLVMOrcLLJITRef jit; /* owns the compiled module and its memory */
    double compile_ms;
};

/* Functions the generated code calls, bound by address: a symbol the process
 * does not export (libm linked statically, BLAS dropped by --as-needed) would
 * otherwise fail only at the first lookup. The process generator covers the
 * rest (memcpy, memset, anything LLVM's passes introduce). */
typedef struct JitSymbol {
    const char *name;
    uintptr_t addr;
} JitSymbol;

#define JIT_FN(f) {#f, (uintptr_t)&f}
static const JitSymbol jit_symbols[] = {
    JIT_FN(exp), JIT_FN(log), JIT_FN(sqrt), JIT_FN(fabs), JIT_FN(sin), JIT_FN(cos),
    JIT_FN(tan), JIT_FN(tanh), JIT_FN(pow), JIT_FN(log1p), JIT_FN(fmax),
    JIT_FN(cblas_dgemm), JIT_FN(cblas_dgemv), JIT_FN(cblas_sgemm), JIT_FN(cblas_sgemv),
};
#undef JIT_FN
enum { JIT_N_SYMBOLS = sizeof jit_symbols / sizeof jit_symbols[0] };

static pthread_once_t jit_once = PTHREAD_ONCE_INIT;

static void jit_init_llvm(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

static double jit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Reports err (consuming it) as an internal error; always returns false. */
static bool jit_fail(Diag *diag, LLVMErrorRef err, int line, const char *what)
{
    char *msg = err ? LLVMGetErrorMessage(err) : NULL;
    diag_internal(diag, __FILE__, line, "%s%s%s", what, msg ? ": " : "", msg ? msg : "");
    if (msg)
        LLVMDisposeErrorMessage(msg);
    return false;
}

/* A target machine for the host (triple, CPU and features as LLJIT's
 * detectHost picks them), so the O2 pipeline's cost model knows the vector
 * width. NULL after a report. */
static LLVMTargetMachineRef jit_host_machine(const char *triple, Diag *diag)
{
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        DIAG_INTERNAL(diag, "no LLVM target for %s: %s", triple, err ? err : "");
        LLVMDisposeMessage(err);
        return NULL;
    }
    char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features,
                                                      LLVMCodeGenLevelDefault, LLVMRelocDefault,
                                                      LLVMCodeModelJITDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    if (!tm)
        jit_fail(diag, NULL, __LINE__, "cannot create the host target machine");
    return tm;
}

/* default<O2> through the new pass manager, with the loop and SLP vectorisers. */
static bool jit_optimise(LLVMModuleRef mod, const char *triple, Diag *diag)
{
    LLVMTargetMachineRef tm = jit_host_machine(triple, diag);
    if (!tm)
        return false;
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O2>", tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    LLVMDisposeTargetMachine(tm);
    return err ? jit_fail(diag, err, __LINE__, "the O2 pipeline failed") : true;
}

/* libm and BLAS by address, then the whole process as a fallback. */
static bool jit_add_symbols(LLVMOrcLLJITRef jit, Diag *diag)
{
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    LLVMJITCSymbolMapPair syms[JIT_N_SYMBOLS];
    for (int i = 0; i < JIT_N_SYMBOLS; i++) {
        syms[i].Name = LLVMOrcLLJITMangleAndIntern(jit, jit_symbols[i].name);
        syms[i].Sym.Address = (LLVMOrcExecutorAddress)jit_symbols[i].addr;
        syms[i].Sym.Flags.GenericFlags =
            LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        syms[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(syms, JIT_N_SYMBOLS);
    LLVMErrorRef err = LLVMOrcJITDylibDefine(jd, mu);
    if (err) {
        LLVMOrcDisposeMaterializationUnit(mu);
        return jit_fail(diag, err, __LINE__, "cannot define the runtime symbols");
    }
    LLVMOrcDefinitionGeneratorRef gen;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
    if (err)
        return jit_fail(diag, err, __LINE__, "cannot search the process for symbols");
    LLVMOrcJITDylibAddGenerator(jd, gen); /* jd owns gen */
    return true;
}

static LLVMOrcLLJITRef jit_create(Diag *diag)
{
    LLVMOrcLLJITRef jit = NULL;
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&jit, LLVMOrcCreateLLJITBuilder()); /* takes the builder */
    if (err) {
        jit_fail(diag, err, __LINE__, "cannot create the LLJIT");
        return NULL;
    }
    if (!jit_add_symbols(jit, diag)) {
        LLVMConsumeError(LLVMOrcDisposeLLJIT(jit));
        return NULL;
    }
    return jit;
}

/* Builds, optimises and adds m's module (the kernels req asks for) to jit;
 * fills *layout, which the caller releases. */
static bool jit_add_model(LLVMOrcLLJITRef jit, const IrModel *m, const JitRequest *req,
                          CgLayout *layout, Diag *diag)
{
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod =
        cg_build_module(LLVMOrcThreadSafeContextGetContext(tsc), m, req, layout, diag);
    bool ok = mod != NULL;
    if (ok) {
        const char *triple = LLVMOrcLLJITGetTripleString(jit);
        LLVMSetTarget(mod, triple);
        LLVMSetDataLayout(mod, LLVMOrcLLJITGetDataLayoutStr(jit));
        ok = jit_optimise(mod, triple, diag);
    }
    if (!ok) {
        if (mod)
            LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return false;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc); /* takes mod */
    LLVMOrcDisposeThreadSafeContext(tsc); /* tsm keeps the context alive */
    LLVMErrorRef err = LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), tsm);
    return err ? jit_fail(diag, err, __LINE__, "cannot add the module to the JIT") : true;
}

/* The address of every kernel of the layout (the first lookup compiles the
 * whole module). */
static bool jit_lookup_all(JitModel *jm, const CgLayout *layout, NdRhsFn *rhs, NdKernelFn *fns,
                           Diag *diag)
{
    for (int i = 0; i < layout->n_kernels; i++) {
        LLVMOrcExecutorAddress addr = 0;
        LLVMErrorRef err = LLVMOrcLLJITLookup(jm->jit, &addr, layout->names[i]);
        if (err || !addr)
            return jit_fail(diag, err, __LINE__, "cannot find a compiled kernel");
        if (i == 0)
            *rhs = (NdRhsFn)(uintptr_t)addr;
        else
            fns[i - 1] = (NdKernelFn)(uintptr_t)addr;
    }
    return true;
}

/* Hands the looked-up kernels out: the table, and the extras to the request. */
static void jit_fill(const IrModel *m, const JitRequest *req, const CgLayout *layout, NdRhsFn rhs,
                     NdKernelFn *fns, JitModel *jm, NdKernels *kernels)
{
    *kernels = (NdKernels){.ny = m->ny, .np = m->np, .ns = m->ns, .work_fixed = layout->work_fixed,
                           .work_per_sample = layout->work_per_sample, .rhs = rhs,
                           .autonomous = ir_model_autonomous(m),
                           .second_order = ir_model_second_order(m), .user = jm};
    int at = 0;
    if (req && req->vjp)
        kernels->vjp = fns[at++];
    if (req && req->jac)
        kernels->jac = fns[at++];
    if (req && req->rhs_vjp)
        kernels->rhs_vjp = fns[at++];
    for (int e = 0; req && e < req->n_extra; e++)
        req->extra_fns[e] = fns[at++];
}

JitModel *jit_compile_request(const IrModel *m, const JitRequest *req, NdKernels *kernels,
                              Diag *diag)
{
    double t0 = jit_now_ms();
    pthread_once(&jit_once, jit_init_llvm);
    int n_extra = req && req->n_extra > 0 ? req->n_extra : 0;
    if (n_extra && !req->extra_fns) {
        jit_fail(diag, NULL, __LINE__, "extra kernels requested without extra_fns");
        return NULL;
    }
    JitModel *jm = calloc(1, sizeof *jm);
    NdKernelFn *fns = calloc((size_t)(3 + n_extra), sizeof *fns); /* vjp, jac, rhs_vjp, extras */
    if (!jm || !fns) {
        diag_plain(diag, "out of memory compiling model '%s'", m->name);
        free(fns);
        free(jm);
        return NULL;
    }
    CgLayout layout = {0};
    NdRhsFn rhs = NULL;
    jm->jit = jit_create(diag);
    bool ok = jm->jit && jit_add_model(jm->jit, m, req, &layout, diag) &&
              jit_lookup_all(jm, &layout, &rhs, fns, diag);
    if (ok)
        jit_fill(m, req, &layout, rhs, fns, jm, kernels);
    cg_layout_free(&layout);
    free(fns);
    if (!ok) {
        jit_free(jm);
        return NULL;
    }
    jm->compile_ms = jit_now_ms() - t0;
    return jm;
}

JitModel *jit_compile(const IrModel *m, NdKernels *kernels, Diag *diag)
{
    return jit_compile_request(m, NULL, kernels, diag);
}

void jit_free(JitModel *jit)
{
    if (!jit)
        return;
    if (jit->jit)
        LLVMConsumeError(LLVMOrcDisposeLLJIT(jit->jit));
    free(jit);
}

double jit_compile_ms(const JitModel *jit)
{
    return jit ? jit->compile_ms : 0;
}

int cg_print_llvm(FILE *out, const IrModel *m, bool f32, Diag *diag)
{
    pthread_once(&jit_once, jit_init_llvm);
    LLVMContextRef ctx = LLVMContextCreate();
    CgLayout layout;
    /* every derived system the model has, as nodec adjoint / emit-llvm show them */
    JitRequest req = {.vjp = m->adj_state != NULL, .jac = m->jac != NULL, .f32 = f32};
    LLVMModuleRef mod = cg_build_module(ctx, m, &req, &layout, diag);
    cg_layout_free(&layout);
    bool ok = mod != NULL;
    if (ok) {
        char *triple = LLVMGetDefaultTargetTriple();
        LLVMTargetMachineRef tm = jit_host_machine(triple, diag);
        if (tm) {
            LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
            LLVMSetTarget(mod, triple);
            LLVMSetModuleDataLayout(mod, dl);
            LLVMDisposeTargetData(dl);
            LLVMDisposeTargetMachine(tm);
        }
        ok = tm && jit_optimise(mod, triple, diag);
        LLVMDisposeMessage(triple);
    }
    if (ok) {
        char *text = LLVMPrintModuleToString(mod);
        fputs(text, out);
        LLVMDisposeMessage(text);
    }
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return ok ? 0 : -1;
}
