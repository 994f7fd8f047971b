/* Block geometry and systematic Reed-Solomon coding of blocks (ISA-L, Cauchy matrix over GF(2^8)). */
#ifndef MC_FEC_H
#define MC_FEC_H

#include <stddef.h>
#include <stdint.h>

/*
 * The payload is cut into verification chunks (chunk_size bytes, from the
 * manifest). Each chunk is cut into coding blocks of kmax symbols of sym
 * bytes (the last block of a chunk shorter); blocks never span chunks. A
 * block of k source symbols has up to 255 coded symbols: ESI 0..k-1 are the
 * source symbols themselves, ESI k..254 repair symbols (rows of a Cauchy
 * matrix, so any k of the 255 rebuild the block). Blocks are numbered
 * globally as chunk * bpc + index in chunk; numbers past a short last chunk
 * are holes that never appear on the wire.
 */
struct mc_geom {
	uint64_t payload_size;
	uint32_t chunk_size, nchunks;
	uint16_t sym, kmax;
	uint32_t bpc;     /* blocks per full chunk */
	uint32_t nblocks; /* nchunks * bpc, holes included */
};

struct mc_block {
	uint32_t chunk;
	uint32_t index;   /* within the chunk */
	uint64_t off;     /* payload offset of the block */
	uint32_t len;     /* bytes */
	uint16_t k;       /* source symbols */
};

/* Fills g; returns 0, or -1 when the numbers cannot describe a session. */
int mc_geom_init(struct mc_geom *g, uint64_t payload_size, uint32_t chunk_size, uint16_t sym, uint16_t kmax);

/* Describes global block gb; returns 0, or -1 for a hole or out of range. */
int mc_geom_block(const struct mc_geom *g, uint32_t gb, struct mc_block *b);

/* Blocks in chunk c (the last chunk may have fewer than bpc). */
uint32_t mc_geom_chunk_blocks(const struct mc_geom *g, uint32_t c);

/* Symbol size for an MTU and address family: the largest multiple of 64 that fits without fragmentation. */
uint16_t mc_geom_sym_for_mtu(unsigned mtu, int ipv6);

/* A coder keeps the encoding matrices it has built (one per distinct k). */
struct mc_fec;
struct mc_fec *mc_fec_new(void);
void mc_fec_free(struct mc_fec *f);

/*
 * Computes the symbols with ESIs esi[0..n) (each >= k) of a block whose k
 * source symbols of len bytes are src[0..k). Returns 0 or -1 (bad args, ENOMEM).
 */
int mc_fec_encode(struct mc_fec *f, int k, int len, uint8_t *const *src, const uint8_t *esi, int n, uint8_t **out);

/*
 * Rebuilds the missing source symbols of a block. src[0..k) point to
 * buffers of len bytes; present[i] says whether src[i] holds source symbol
 * i. rep[0..nrep) are repair symbols with ESIs rep_esi[] (each >= k, distinct);
 * at least (missing count) of them are needed. Missing sources are written
 * into their src buffers. Returns 0, or -1 when there are too few symbols.
 */
int mc_fec_decode(struct mc_fec *f, int k, int len, uint8_t **src, const uint8_t *present,
		  uint8_t *const *rep, const uint8_t *rep_esi, int nrep);

#endif
