/* Block geometry and Reed-Solomon coding with ISA-L; see fec.h. */
#include "fec.h"
#include "pkg.h"

#include <isa-l/erasure_code.h>
#include <stdlib.h>
#include <string.h>

#define CACHE 4

struct mc_fec {
	struct {
		int k;
		unsigned long use;
		uint8_t *a; /* MC_RS_MAX x k, rows 0..k-1 the identity */
	} m[CACHE];
	unsigned long clock;
	/*
	 * Encoding tables for the repair rows asked for most: the first pass asks
	 * every block of the same k for the same rows, and building the tables
	 * (ISA-L's gf_vect_mul_init per coefficient) cost as much as a sixth of
	 * the sender's instructions.
	 */
	struct {
		int k, n;
		unsigned long use;
		uint8_t esi[MC_RS_MAX];
		uint8_t *tbls;
	} enc[CACHE];
	/* Scratch, grown on demand: a receiver that never decodes never pays for it. */
	uint8_t *tbls, *rows, *sub, *inv, *prod;
	size_t tbls_cap, mat_cap;
};

/* Makes room for ec_init_tables output of tbls bytes and matrices of mat bytes each. */
static int scratch(struct mc_fec *f, size_t tbls, size_t mat)
{
	if (tbls > f->tbls_cap) {
		uint8_t *t = realloc(f->tbls, tbls);
		if (t == NULL)
			return -1;
		f->tbls = t;
		f->tbls_cap = tbls;
	}
	if (mat > f->mat_cap) {
		uint8_t **m[] = {&f->rows, &f->sub, &f->inv, &f->prod};
		for (unsigned i = 0; i < 4; i++) {
			uint8_t *t = realloc(*m[i], mat);
			if (t == NULL)
				return -1;
			*m[i] = t;
		}
		f->mat_cap = mat;
	}
	return 0;
}

/* The counts both kinds of geometry share; nchunks and payload_size checked by the caller. */
static int geom_common(struct mc_geom *g, uint64_t nchunks, uint64_t payload_size, uint32_t chunk_size, uint16_t sym,
		       uint16_t kmax)
{
	memset(g, 0, sizeof *g);
	if (sym == 0 || kmax == 0 || kmax >= MC_RS_MAX || chunk_size == 0)
		return -1;
	uint64_t block = (uint64_t)kmax * sym;
	uint64_t bpc = (chunk_size + block - 1) / block;
	if (nchunks > UINT32_MAX || nchunks * bpc > UINT32_MAX)
		return -1;
	g->payload_size = payload_size;
	g->chunk_size = chunk_size;
	g->nchunks = (uint32_t)nchunks;
	g->sym = sym;
	g->kmax = kmax;
	g->bpc = (uint32_t)bpc;
	g->nblocks = (uint32_t)(nchunks * bpc);
	return 0;
}

int mc_geom_init(struct mc_geom *g, uint64_t payload_size, uint32_t chunk_size, uint16_t sym, uint16_t kmax)
{
	/* An empty package has no chunks and no blocks: its session is the manifest alone. */
	return geom_common(g, chunk_size ? mc_chunk_count(payload_size, chunk_size) : 0, payload_size, chunk_size, sym,
			   kmax);
}

int mc_geom_init_image(struct mc_geom *g, uint32_t nchunks, uint64_t payload_size, uint32_t chunk_size,
		       uint16_t sym, uint16_t kmax)
{
	if (payload_size > (uint64_t)nchunks * chunk_size) {
		memset(g, 0, sizeof *g);
		return -1;
	}
	if (geom_common(g, nchunks, payload_size, chunk_size, sym, kmax) < 0)
		return -1;
	g->image = 1;
	return 0;
}

int mc_geom_set_table(struct mc_geom *g, const uint64_t *off)
{
	if (!g->image || off == NULL || off[0] != 0 || off[g->nchunks] != g->payload_size)
		return -1;
	for (uint32_t c = 0; c < g->nchunks; c++)
		if (off[c + 1] < off[c] || off[c + 1] - off[c] > g->chunk_size)
			return -1;
	g->off = off;
	return 0;
}

int mc_geom_init_manifest(struct mc_geom *g, const struct mc_manifest *m, uint16_t sym, uint16_t kmax)
{
	if (m->format != MC_PKG_VERSION_IMAGE)
		return mc_geom_init(g, m->payload_size, m->chunk_size, sym, kmax);
	if (mc_geom_init_image(g, m->nchunks, m->payload_size, m->chunk_size, sym, kmax) < 0 ||
	    mc_geom_set_table(g, m->chunk_offs) < 0)
		return -1;
	return 0;
}

uint64_t mc_geom_chunk_off(const struct mc_geom *g, uint32_t c)
{
	return g->image ? g->off[c] : (uint64_t)c * g->chunk_size;
}

uint32_t mc_geom_chunk_len(const struct mc_geom *g, uint32_t c)
{
	if (g->image)
		return (uint32_t)(g->off[c + 1] - g->off[c]);
	uint64_t off = (uint64_t)c * g->chunk_size;
	return (uint32_t)(g->payload_size - off < g->chunk_size ? g->payload_size - off : g->chunk_size);
}

uint32_t mc_geom_chunk_blocks(const struct mc_geom *g, uint32_t c)
{
	if (!mc_geom_placed(g) || c >= g->nchunks)
		return 0;
	uint64_t len = mc_geom_chunk_len(g, c);
	uint64_t block = (uint64_t)g->kmax * g->sym;

	return (uint32_t)((len + block - 1) / block);
}

int mc_geom_block(const struct mc_geom *g, uint32_t gb, struct mc_block *b)
{
	if (gb >= g->nblocks || !mc_geom_placed(g))
		return -1;
	uint32_t c = gb / g->bpc, i = gb % g->bpc;
	uint64_t coff = mc_geom_chunk_off(g, c);
	uint64_t clen = mc_geom_chunk_len(g, c);
	uint64_t block = (uint64_t)g->kmax * g->sym;
	uint64_t boff = (uint64_t)i * block;

	if (boff >= clen)
		return -1;
	b->chunk = c;
	b->index = i;
	b->off = coff + boff;
	b->len = (uint32_t)(clen - boff < block ? clen - boff : block);
	b->k = (uint16_t)((b->len + g->sym - 1) / g->sym);
	return 0;
}

struct mc_fec *mc_fec_new(void)
{
	return calloc(1, sizeof(struct mc_fec));
}

void mc_fec_free(struct mc_fec *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < CACHE; i++) {
		free(f->m[i].a);
		free(f->enc[i].tbls);
	}
	free(f->tbls);
	free(f->rows);
	free(f->sub);
	free(f->inv);
	free(f->prod);
	free(f);
}

/* The 255 x k systematic Cauchy matrix for k, built once and kept in a small cache. */
static const uint8_t *matrix(struct mc_fec *f, int k)
{
	int victim = 0;

	for (int i = 0; i < CACHE; i++) {
		if (f->m[i].a && f->m[i].k == k) {
			f->m[i].use = ++f->clock;
			return f->m[i].a;
		}
		if (f->m[i].use < f->m[victim].use)
			victim = i;
	}
	uint8_t *a = malloc((size_t)MC_RS_MAX * k);
	if (a == NULL)
		return NULL;
	gf_gen_cauchy1_matrix(a, MC_RS_MAX, k);
	free(f->m[victim].a);
	f->m[victim].a = a;
	f->m[victim].k = k;
	f->m[victim].use = ++f->clock;
	return a;
}

int mc_fec_encode(struct mc_fec *f, int k, int len, uint8_t *const *src, const uint8_t *esi, int n, uint8_t **out)
{
	const uint8_t *a;

	if (k <= 0 || k >= MC_RS_MAX || n <= 0 || n > MC_RS_MAX || len <= 0)
		return -1;
	for (int r = 0; r < n; r++)
		if (esi[r] < k)
			return -1;
	int victim = 0;
	for (int i = 0; i < CACHE; i++) {
		if (f->enc[i].tbls && f->enc[i].k == k && f->enc[i].n == n && memcmp(f->enc[i].esi, esi, (size_t)n) == 0) {
			f->enc[i].use = ++f->clock;
			ec_encode_data(len, k, n, f->enc[i].tbls, (uint8_t **)src, out);
			return 0;
		}
		if (f->enc[i].use < f->enc[victim].use)
			victim = i;
	}
	if ((a = matrix(f, k)) == NULL || scratch(f, (size_t)32 * k * n, (size_t)MC_RS_MAX * k) < 0)
		return -1;
	for (int r = 0; r < n; r++)
		memcpy(f->rows + (size_t)r * k, a + (size_t)esi[r] * k, (size_t)k);
	uint8_t *t = realloc(f->enc[victim].tbls, (size_t)32 * k * n);
	if (t == NULL)
		return -1;
	ec_init_tables(k, n, f->rows, t);
	f->enc[victim].tbls = t;
	f->enc[victim].k = k;
	f->enc[victim].n = n;
	f->enc[victim].use = ++f->clock;
	memcpy(f->enc[victim].esi, esi, (size_t)n);
	ec_encode_data(len, k, n, t, (uint8_t **)src, out);
	return 0;
}

/*
 * With M the missing sources (m of them) and R the first m repair rows:
 * y_R = A[R][M] x_M + A[R][K] x_K, so x_M = inv(A[R][M]) (A[R][K] x_K + y_R)
 * (addition is XOR). One m x k matrix C = [inv*A[R][K] | inv] applied to the
 * k inputs (known sources, then the m repairs) yields x_M in one ISA-L pass.
 */
int mc_fec_decode(struct mc_fec *f, int k, int len, uint8_t **src, const uint8_t *present,
		  uint8_t *const *rep, const uint8_t *rep_esi, int nrep)
{
	int miss[MC_RS_MAX], known[MC_RS_MAX], m = 0, nk = 0;
	uint8_t *in[MC_RS_MAX], *out[MC_RS_MAX];
	const uint8_t *a;

	if (k <= 0 || k >= MC_RS_MAX || len <= 0)
		return -1;
	for (int i = 0; i < k; i++) {
		if (present[i])
			known[nk++] = i;
		else
			miss[m++] = i;
	}
	if (m == 0)
		return 0;
	if (nrep < m || (a = matrix(f, k)) == NULL || scratch(f, (size_t)32 * k * m, (size_t)MC_RS_MAX * k) < 0)
		return -1;
	for (int r = 0; r < m; r++) {
		if (rep_esi[r] < k)
			return -1;
		for (int c = 0; c < m; c++)
			f->sub[r * m + c] = a[(size_t)rep_esi[r] * k + miss[c]];
	}
	if (gf_invert_matrix(f->sub, f->inv, m) < 0)
		return -1;
	/*
	 * C = [inv * A[R][known] | inv], m rows by k columns. The product is
	 * itself an erasure-code pass (rows of A[R][known] as data, inv as the
	 * coefficients), so ISA-L's vector code does it instead of m*m*nk scalar
	 * multiplications.
	 */
	if (nk > 0) {
		uint8_t *arow[MC_RS_MAX], *crow[MC_RS_MAX];
		for (int t = 0; t < m; t++) {
			arow[t] = f->sub + (size_t)t * nk;
			for (int c = 0; c < nk; c++)
				arow[t][c] = a[(size_t)rep_esi[t] * k + known[c]];
			crow[t] = f->prod + (size_t)t * nk;
		}
		ec_init_tables(m, m, f->inv, f->tbls);
		ec_encode_data(nk, m, m, f->tbls, arow, crow);
		for (int r = 0; r < m; r++)
			memcpy(f->rows + (size_t)r * k, crow[r], (size_t)nk);
	}
	for (int r = 0; r < m; r++)
		for (int t = 0; t < m; t++)
			f->rows[(size_t)r * k + nk + t] = f->inv[r * m + t];
	for (int c = 0; c < nk; c++)
		in[c] = src[known[c]];
	for (int t = 0; t < m; t++)
		in[nk + t] = rep[t];
	for (int r = 0; r < m; r++)
		out[r] = src[miss[r]];
	ec_init_tables(k, m, f->rows, f->tbls);
	ec_encode_data(len, k, m, f->tbls, in, out);
	return 0;
}
