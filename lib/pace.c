/* Token bucket and the rate under overruns; see pace.h. */
#include "pace.h"

void mc_pace_init(struct mc_pace *p, uint64_t rate_bps, size_t burst, uint64_t now_ns)
{
	p->bytes_per_ns = (double)rate_bps / 8e9;
	p->burst = (double)burst;
	p->tokens = (double)burst;
	p->last_ns = now_ns;
}

static void refill(struct mc_pace *p, uint64_t now_ns)
{
	if (now_ns > p->last_ns) {
		p->tokens += (double)(now_ns - p->last_ns) * p->bytes_per_ns;
		if (p->tokens > p->burst)
			p->tokens = p->burst;
		p->last_ns = now_ns;
	}
}

uint64_t mc_pace_wait(struct mc_pace *p, uint64_t now_ns, size_t len)
{
	refill(p, now_ns);
	if (p->tokens >= (double)len || p->tokens >= p->burst)
		return 0;
	return (uint64_t)(((double)len - p->tokens) / p->bytes_per_ns) + 1;
}

void mc_pace_spend(struct mc_pace *p, size_t len)
{
	p->tokens -= (double)len;
}

void mc_pace_set_rate(struct mc_pace *p, uint64_t rate_bps)
{
	p->bytes_per_ns = (double)rate_bps / 8e9;
}

void mc_rate_init(struct mc_rate *r, uint64_t max_bps, uint64_t now_ms)
{
	r->max = r->cur = r->lowest = r->knee = max_bps;
	r->min = max_bps / 16 ? max_bps / 16 : 1;
	r->reports = 0;
	r->cut_ms = r->step_ms = now_ms;
	r->cuts = 0;
}

int mc_rate_update(struct mc_rate *r, uint64_t reports, uint64_t sent_bps, uint64_t now_ms)
{
	if (reports != r->reports) {
		r->reports = reports;
		if (now_ms - r->cut_ms < MC_RATE_HOLD_MS && r->cuts)
			return 0;
		r->knee = sent_bps && sent_bps < r->cur ? sent_bps : r->cur;
		r->cur = r->knee / 2 > r->min ? r->knee / 2 : r->min;
		r->cut_ms = r->step_ms = now_ms;
		r->cuts++;
		if (r->cur < r->lowest)
			r->lowest = r->cur;
		return 1;
	}
	if (r->cur < r->max && now_ms - r->step_ms >= MC_RATE_STEP_MS) {
		/* Quickly back to near where it overran, then gently past it. */
		uint64_t step = r->cur < r->knee / 8 * 7 ? r->max / 32 : r->max / 256;
		r->cur = r->max - r->cur > step ? r->cur + step : r->max;
		r->step_ms = now_ms;
		return 1;
	}
	return 0;
}
