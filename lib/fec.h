/* Block geometry and systematic Reed-Solomon coding of blocks (ISA-L, Cauchy matrix over GF(2^8)). */
#ifndef MC_FEC_H
#define MC_FEC_H

#include <stddef.h>
#include <stdint.h>

#define MC_RS_MAX 255 /* Reed-Solomon over GF(2^8): at most 255 symbols per block */
#define MC_KMAX 128   /* source symbols per block the sender cuts: see mcast-protocol(7) */

/*
 * The payload is cut into verification chunks (chunk_size bytes, from the
 * manifest). Each chunk is cut into coding blocks of kmax symbols of sym
 * bytes (the last block of a chunk shorter); blocks never span chunks. A
 * block of k source symbols has up to 255 coded symbols: ESI 0..k-1 are the
 * source symbols themselves, ESI k..254 repair symbols (rows of a Cauchy
 * matrix, so any k of the 255 rebuild the block). Blocks are numbered
 * globally as chunk * bpc + index in chunk; numbers past a short chunk are
 * holes that never appear on the wire.
 *
 * A seekable image (package format 2) stores each chunk as its own frame of
 * at most chunk_size bytes: chunk c lies at off[c] .. off[c+1] of the
 * payload, and a hole chunk (all zeros in the image) has no bytes and no
 * blocks. bpc still comes from chunk_size, the largest a chunk can be, so a
 * block's number is the same whatever the lengths; only where it lies and
 * how many symbols it has come from the table, which arrives with the
 * manifest. Until it is set, no block of such a geometry can be placed.
 */
struct mc_geom {
	uint64_t payload_size;
	uint32_t chunk_size, nchunks;
	uint16_t sym, kmax;
	uint32_t bpc;     /* blocks per full chunk */
	uint32_t nblocks; /* nchunks * bpc, holes included */
	int image;        /* chunks of their own lengths (mc_geom_init_image) */
	const uint64_t *off; /* image: nchunks + 1 payload offsets, not owned; NULL until known */
};

struct mc_block {
	uint32_t chunk;
	uint32_t index;   /* within the chunk */
	uint64_t off;     /* payload offset of the block */
	uint32_t len;     /* bytes */
	uint16_t k;       /* source symbols */
};

/* Fills g for chunks of chunk_size bytes (the last shorter); returns 0, or -1 when the numbers cannot describe a session. */
int mc_geom_init(struct mc_geom *g, uint64_t payload_size, uint32_t chunk_size, uint16_t sym, uint16_t kmax);

/*
 * Fills g for nchunks chunks of at most chunk_size bytes each, payload_size
 * bytes in all (an image package); the lengths come later with
 * mc_geom_set_table. Returns 0, or -1 when the numbers cannot describe a
 * session (more bytes than nchunks chunks can hold, too many blocks).
 */
int mc_geom_init_image(struct mc_geom *g, uint32_t nchunks, uint64_t payload_size, uint32_t chunk_size,
		       uint16_t sym, uint16_t kmax);

/*
 * Sets the chunk table of an image geometry: off[0..nchunks] are payload
 * offsets, off[0] 0, never decreasing, no chunk longer than chunk_size,
 * off[nchunks] payload_size. The table is not copied: it must outlive g's
 * use. Returns 0, or -1 (g unchanged) when it does not fit g.
 */
int mc_geom_set_table(struct mc_geom *g, const uint64_t *off);

/*
 * The geometry of manifest m's package: fixed chunks for format 1, an image
 * placed by m's chunk table for format 2 (m must outlive g's use). Returns 0
 * or -1 as the calls above.
 */
struct mc_manifest;
int mc_geom_init_manifest(struct mc_geom *g, const struct mc_manifest *m, uint16_t sym, uint16_t kmax);

/* 1 when blocks can be placed: a fixed-chunk geometry, or an image one with its table. */
static inline int mc_geom_placed(const struct mc_geom *g) { return !g->image || g->off != NULL; }

/* Payload offset and length of chunk c (c < nchunks, the geometry placed). */
uint64_t mc_geom_chunk_off(const struct mc_geom *g, uint32_t c);
uint32_t mc_geom_chunk_len(const struct mc_geom *g, uint32_t c);

/* Describes global block gb; returns 0, or -1 for a hole, out of range, or not yet placed. */
int mc_geom_block(const struct mc_geom *g, uint32_t gb, struct mc_block *b);

/* Blocks in chunk c (fewer than bpc in a short chunk, 0 in a hole or before an image's table is known). */
uint32_t mc_geom_chunk_blocks(const struct mc_geom *g, uint32_t c);


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
