/* Seeded random numbers for parameter initialisers and samplers: xoshiro256**
 * seeded through splitmix64, so `option seed = 42` gives the same parameters on
 * every machine. */
#ifndef ND_RANDOM_H
#define ND_RANDOM_H

#include <stdint.h>

typedef struct NdRandom {
    uint64_t s[4];
    double spare;      /* second Box-Muller normal */
    int has_spare;
} NdRandom;

void nd_random_seed(NdRandom *r, uint64_t seed);
/* Stream `stream` of a seed: unrelated sequences from one seed, so each user of
 * randomness (the parameters, each directive) draws independently of the
 * others. Stream 0 is nd_random_seed(seed). */
void nd_random_seed_stream(NdRandom *r, uint64_t seed, uint64_t stream);
uint64_t nd_random_u64(NdRandom *r);
double nd_random_uniform(NdRandom *r, double a, double b); /* [a, b) */
double nd_random_normal(NdRandom *r, double mean, double sd);

#endif
