/* The JIT: llvm_codegen.c's module (the rhs and the derived kernels a request
 * asks for) -> verify -> O2 (new pass manager) -> object code for the host ->
 * ORC LLJIT -> the kernel table the runtime calls. A request that asks for the
 * compile cache (llvm_cache.c) takes the object code from disk when the same
 * module was compiled before, skipping O2 and code generation, and files what
 * it compiles otherwise. Every LLVM object is created
 * and released here: a JitModel owns its LLJIT (and through it the compiled
 * code), and each error path disposes what it made, so a compile under
 * LeakSanitizer leaves nothing behind. */
#include "llvm_jit.h"
#include "llvm_cache.h"
#include "llvm_jit_internal.h"

#include <llvm-c/BitWriter.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h> /* LLVM_VERSION_STRING: part of the cache key */

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    double optimise_ms, codegen_ms; /* of compile_ms: O2, and the object code (0 when cached) */
    bool cached; /* the object code came from the compile cache */
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

/* The host's CPU and features, read once per process (a few hundred
 * microseconds each time: most of a cache hit's cost if read per module). */
static char *host_cpu, *host_features;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_read(void)
{
    host_cpu = LLVMGetHostCPUName();
    host_features = LLVMGetHostCPUFeatures();
}

const char *cg_host_features(void)
{
    pthread_once(&host_once, host_read);
    return host_features;
}

/* A target machine for the host (triple, CPU and features as LLJIT's
 * detectHost picks them), so the O2 pipeline's cost model knows the vector
 * width and the object code uses the whole CPU. NULL after a report. */
static LLVMTargetMachineRef jit_host_machine(const char *triple, Diag *diag)
{
    pthread_once(&host_once, host_read);
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        DIAG_INTERNAL(diag, "no LLVM target for %s: %s", triple, err ? err : "");
        LLVMDisposeMessage(err);
        return NULL;
    }
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, host_cpu, host_features,
                                                      LLVMCodeGenLevelDefault, LLVMRelocDefault,
                                                      LLVMCodeModelJITDefault);
    if (!tm)
        jit_fail(diag, NULL, __LINE__, "cannot create the host target machine");
    return tm;
}

/* default<O2> through the new pass manager, with the loop and SLP vectorisers;
 * tm (the host's) gives the cost model its vector width. */
static bool jit_optimise(LLVMModuleRef mod, LLVMTargetMachineRef tm, Diag *diag)
{
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O2>", tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    return err ? jit_fail(diag, err, __LINE__, "the O2 pipeline failed") : true;
}

/* The optimised module as the host's object code (what LLJIT's own compile
 * layer would make: the same target machine), or NULL after a report. */
static LLVMMemoryBufferRef jit_object(LLVMModuleRef mod, LLVMTargetMachineRef tm, Diag *diag)
{
    LLVMMemoryBufferRef obj = NULL;
    char *err = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &obj)) {
        DIAG_INTERNAL(diag, "LLVM cannot emit the kernels' object code: %s", err ? err : "");
        LLVMDisposeMessage(err);
        return NULL;
    }
    return obj;
}

/* The cached object code of mod, or NULL; *e is opened for a later store
 * (e->key NULL: no cache). The key is the module's bitcode (unoptimised: what
 * codegen built), a third of the time its text takes to print. */
static LLVMMemoryBufferRef jit_cache_lookup(LLVMModuleRef mod, const char *triple, JitCacheEntry *e)
{
    /* what decides the code besides the module: LLVM's version and the target */
    pthread_once(&host_once, host_read);
    size_t n_target = strlen(host_cpu) + strlen(host_features) + strlen(triple) + 64;
    char *target = malloc(n_target);
    if (!target)
        return NULL;
    snprintf(target, n_target, "llvm %s %s %s %s", LLVM_VERSION_STRING, triple, host_cpu,
             host_features);
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(mod);
    bool open = bc && jit_cache_open(e, target, LLVMGetBufferStart(bc), LLVMGetBufferSize(bc));
    free(target);
    if (bc)
        LLVMDisposeMemoryBuffer(bc);
    if (!open)
        return NULL;
    size_t n = 0;
    void *bytes = jit_cache_load(e, &n);
    LLVMMemoryBufferRef obj =
        bytes ? LLVMCreateMemoryBufferWithMemoryRangeCopy(bytes, n, "nodec-cached-kernels") : NULL;
    free(bytes);
    return obj;
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

/* An LLJIT for the host, told the target rather than left to detect it again. */
static LLVMOrcLLJITRef jit_create(Diag *diag)
{
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetMachineRef tm = jit_host_machine(triple, diag);
    LLVMDisposeMessage(triple);
    if (!tm)
        return NULL;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder( /* takes the JTMB, which takes tm */
        builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    LLVMOrcLLJITRef jit = NULL;
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&jit, builder); /* takes the builder */
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

/* The module's private globals (codegen's constant tables, named by IR node
 * while it builds) unnamed, like its values: the same code, the same bytes. */
static void jit_unname_privates(LLVMModuleRef mod)
{
    for (LLVMValueRef g = LLVMGetFirstGlobal(mod); g; g = LLVMGetNextGlobal(g))
        if (LLVMGetLinkage(g) == LLVMPrivateLinkage)
            LLVMSetValueName2(g, "", 0);
}

/* Builds m's module (the kernels req asks for), takes its object code from the
 * cache or optimises and compiles it, and adds that to jit; fills *layout,
 * which the caller releases, and *cached. */
static bool jit_add_model(LLVMOrcLLJITRef jit, const IrModel *m, const JitRequest *req,
                          CgLayout *layout, JitModel *jm, Diag *diag)
{
    bool *cached = &jm->cached;
    LLVMContextRef ctx = LLVMContextCreate();
    /* Values and blocks unnamed (their names carry IR node numbers, which shift
     * with unrelated parts of the program): the cache key is then the code
     * alone. emit-llvm's module keeps them. */
    LLVMContextSetDiscardValueNames(ctx, 1);
    LLVMModuleRef mod = cg_build_module(ctx, m, req, layout, diag);
    const char *triple = LLVMOrcLLJITGetTripleString(jit);
    LLVMTargetMachineRef tm = NULL; /* made only to compile: a cache hit needs none */
    LLVMMemoryBufferRef obj = NULL;
    JitCacheEntry entry = {0};
    if (mod) {
        LLVMSetTarget(mod, triple);
        LLVMSetDataLayout(mod, LLVMOrcLLJITGetDataLayoutStr(jit));
        jit_unname_privates(mod);
        if (req && req->cache)
            obj = jit_cache_lookup(mod, triple, &entry);
        *cached = obj != NULL;
        double t0 = jit_now_ms();
        if (!obj && (tm = jit_host_machine(triple, diag)) && jit_optimise(mod, tm, diag)) {
            double t1 = jit_now_ms();
            obj = jit_object(mod, tm, diag);
            jm->optimise_ms = t1 - t0;
            jm->codegen_ms = jit_now_ms() - t1;
        }
        if (obj && !*cached && entry.key)
            jit_cache_store(&entry, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj));
    }
    jit_cache_close(&entry);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    if (mod)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    if (!obj)
        return false;
    LLVMErrorRef err = LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), obj); /* takes obj */
    return err ? jit_fail(diag, err, __LINE__, "cannot add the kernels' object code to the JIT") : true;
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
    bool ok = jm->jit && jit_add_model(jm->jit, m, req, &layout, jm, diag) &&
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

bool jit_from_cache(const JitModel *jit)
{
    return jit && jit->cached;
}

double jit_optimise_ms(const JitModel *jit)
{
    return jit ? jit->optimise_ms : 0;
}

double jit_codegen_ms(const JitModel *jit)
{
    return jit ? jit->codegen_ms : 0;
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
        }
        ok = tm && jit_optimise(mod, tm, diag);
        if (tm)
            LLVMDisposeTargetMachine(tm);
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
