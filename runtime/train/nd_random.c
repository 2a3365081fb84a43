/* Seeded random numbers for parameter initialisers and batch samplers:
 * xoshiro256** 1.0 (Blackman and Vigna, "Scrambled linear pseudorandom number
 * generators", ACM TOMS 2021; reference code at prng.di.unimi.it), its state
 * filled by splitmix64 as the authors recommend, so one 64-bit seed gives the
 * same stream on every machine. Normals by Box–Muller, the second one cached. */
#include "nd_random.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 (Steele, Lea, Flood 2014): a 64-bit seed to well-mixed words,
 * never leaving the xoshiro state all zero. */
static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void nd_random_seed(NdRandom *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64_next(&x);
    r->spare = 0.0;
    r->has_spare = 0;
}

void nd_random_seed_stream(NdRandom *r, uint64_t seed, uint64_t stream)
{
    /* seed ^ mix(stream), not seed + stream: splitmix64 walks its state by a
     * fixed increment, so nearby starting states would give shifted copies of
     * one another's words. */
    uint64_t mixed = stream;
    nd_random_seed(r, stream == 0 ? seed : seed ^ splitmix64_next(&mixed));
}

uint64_t nd_random_u64(NdRandom *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits as a multiple of 2^-53: uniform on [0, 1). */
static double random_unit(NdRandom *r)
{
    return (double)(nd_random_u64(r) >> 11) * 0x1.0p-53;
}

double nd_random_uniform(NdRandom *r, double a, double b)
{
    double x = a + (b - a) * random_unit(r);
    /* a + (b - a) u can round up to b when u is just below 1. */
    return a < b && x >= b ? nextafter(b, a) : x;
}

/* Box–Muller: two uniforms give two independent standard normals,
 * sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2); u1 is in (0, 1] so the log is finite. */
double nd_random_normal(NdRandom *r, double mean, double sd)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return mean + sd * r->spare;
    }
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - random_unit(r);
    double u2 = random_unit(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(two_pi * u2);
    r->has_spare = 1;
    return mean + sd * rad * cos(two_pi * u2);
}
