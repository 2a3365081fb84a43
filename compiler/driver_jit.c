/* The JIT stage of compile(): one LLVM module per kernel set, compiled side by
 * side. Each module has its own LLVM context and LLJIT (llvm_jit.c), and code
 * generation reads the IR without writing it, so sets need nothing shared but
 * the diagnostics: each job reports into its own Diag on a memory stream,
 * printed after the join in set order, so what a run prints does not depend on
 * which thread finished first. The kernels are handed out in the calling
 * thread afterwards. */
#include "driver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One set's compile: the request (built before the threads start) and what
 * came back. */
typedef struct JitJob {
    const KernelSet *set;
    CompiledSet *cs;
    JitRequest req;
    NdKernelFn *fns;       /* the request's extra kernels, by position */
    PlanKernelSpec *specs; /* and their specs */
    Diag diag;             /* this job's reports, on buf */
    char *buf;
    size_t len;
    FILE *out;
} JitJob;

typedef struct JitQueue {
    JitJob *jobs;
    int n;
    int next; /* the next job to take, under lock */
    pthread_mutex_t lock;
} JitQueue;

/* The set's kernels besides the model's, in the request's order: a train's
 * loss kernels, then the events', then an SDE's diffusion kernels, then an
 * encoder's. false when out of memory. */
static bool job_prepare(Compilation *c, const KernelSet *s, CompiledSet *cs, bool cache, JitJob *job)
{
    int n = s->loss.n + s->events.n + s->n_sde + s->enc.n;
    job->set = s;
    job->cs = cs;
    job->fns = calloc((size_t)n + 1, sizeof *job->fns);
    job->specs = calloc((size_t)n + 1, sizeof *job->specs);
    cs->events = s->events.n > 0 ? calloc((size_t)s->model->n_events + 1, sizeof *cs->events)
                                 : NULL;
    job->out = open_memstream(&job->buf, &job->len);
    if (!job->fns || !job->specs || (s->events.n > 0 && !cs->events) || !job->out)
        return false;
    diag_init(&job->diag, job->out);
    PlanKernelSpec *at = job->specs;
    memcpy(at, s->loss.specs, (size_t)s->loss.n * sizeof *at);
    memcpy(at += s->loss.n, s->events.specs, (size_t)s->events.n * sizeof *at);
    memcpy(at += s->events.n, s->sde, (size_t)s->n_sde * sizeof *at);
    memcpy(at += s->n_sde, s->enc.specs, (size_t)s->enc.n * sizeof *at);
    job->req = (JitRequest){.vjp = s->vjp, .jac = s->jac, .rhs_vjp = s->rhs_vjp, .n_extra = n,
                            .extra = job->specs, .extra_fns = job->fns,
                            .f32 = c->program->f32, .cache = cache};
    return true;
}

static void *jit_worker(void *arg)
{
    JitQueue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        int i = q->next < q->n ? q->next++ : -1;
        pthread_mutex_unlock(&q->lock);
        if (i < 0)
            return NULL;
        JitJob *job = &q->jobs[i];
        job->cs->jit = jit_compile_request(job->set->model, &job->req, &job->cs->kernels, &job->diag);
    }
}

/* The compiled kernels where the runtime looks for them. */
static void job_assign(Compilation *c, JitJob *job)
{
    const KernelSet *s = job->set;
    CompiledSet *cs = job->cs;
    c->n_jit++;
    c->n_cached += jit_from_cache(cs->jit);
    NdKernelFn *fns = job->fns, *sde = fns + s->loss.n + s->events.n, *enc = sde + s->n_sde;
    if (s->n_sde > 0) {
        cs->kernels.diffusion = sde[0];
        cs->kernels.diffusion_dx = sde[1];
    }
    if (s->n_sde == 4) { /* a train's: their vector-Jacobian products */
        cs->kernels.diffusion_vjp = sde[2];
        cs->kernels.diffusion_dx_vjp = sde[3];
    }
    if (s->events.n > 0) {
        event_kernels_assign(s->model, s->events.grads, fns + s->loss.n, cs->events);
        cs->kernels.n_events = s->model->n_events;
        cs->kernels.events = cs->events;
    }
    for (int k = 0; k < ENC_K_COUNT; k++)
        cs->enc[k] = s->enc.slot[k] >= 0 ? enc[s->enc.slot[k]] : NULL;
    train_kernels_assign(&s->loss, fns, cs->loss, cs->metrics, cs->loss_d);
}

/* Threads for n jobs: the online cores, at most NODEC_THREADS, at most n. */
static int jit_threads(int n)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("NODEC_THREADS");
    long cap = env && *env ? strtol(env, NULL, 10) : cores;
    long t = cores < cap ? cores : cap;
    t = t < n ? t : n;
    return t < 1 ? 1 : (int)t;
}

bool driver_jit_sets(Compilation *c, bool cache)
{
    c->compiled = calloc((size_t)c->sets.n + 1, sizeof *c->compiled);
    JitJob *jobs = calloc((size_t)c->sets.n + 1, sizeof *jobs);
    int n = 0;
    bool ok = c->compiled && jobs;
    for (int i = 0; ok && i < c->sets.n; i++)
        if (c->sets.sets[i].targets & TARGET_JIT)
            ok = job_prepare(c, &c->sets.sets[i], &c->compiled[i], cache, &jobs[n++]);
    if (!ok)
        diag_plain(&c->diag, "out of memory compiling the kernels");
    JitQueue q = {.jobs = jobs, .n = ok ? n : 0};
    pthread_mutex_init(&q.lock, NULL);
    enum { MAX_THREADS = 64 };
    pthread_t threads[MAX_THREADS];
    int nt = jit_threads(q.n) - 1, started = 0; /* this thread is one of them */
    for (int t = 0; t < nt && t < MAX_THREADS; t++)
        started += pthread_create(&threads[started], NULL, jit_worker, &q) == 0;
    jit_worker(&q);
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    pthread_mutex_destroy(&q.lock);
    for (int i = 0; i < n; i++) { /* in set order: reports, then the kernels */
        JitJob *job = &jobs[i];
        if (job->out) {
            fclose(job->out);
            if (job->len)
                fputs(job->buf, c->diag.out);
            free(job->buf);
        }
        c->diag.errors += job->diag.errors;
        diag_free(&job->diag);
        if (ok && job->cs->jit)
            job_assign(c, job);
        else
            ok = false;
        free(job->fns);
        free(job->specs);
    }
    free(jobs);
    return ok;
}
