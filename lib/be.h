/* Big-endian integer load and store: the byte order of the package format, the state file and the wire. */
#ifndef MC_BE_H
#define MC_BE_H

#include <stdint.h>

static inline void mc_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void mc_put32(uint8_t *p, uint32_t v) { mc_put16(p, (uint16_t)(v >> 16)); mc_put16(p + 2, (uint16_t)v); }
static inline void mc_put64(uint8_t *p, uint64_t v) { mc_put32(p, (uint32_t)(v >> 32)); mc_put32(p + 4, (uint32_t)v); }
static inline uint16_t mc_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t mc_get32(const uint8_t *p) { return (uint32_t)mc_get16(p) << 16 | mc_get16(p + 2); }
static inline uint64_t mc_get64(const uint8_t *p) { return (uint64_t)mc_get32(p) << 32 | mc_get32(p + 4); }

#endif
