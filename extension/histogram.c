/*-------------------------------------------------------------------------
 *
 * histogram.c
 *		The execution time histogram: pgsm_histogram_buckets steps growing
 *		geometrically from pgsm_histogram_min to pgsm_histogram_max, plus an
 *		outlier slot at each bounded end (22 slots at the defaults).
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <math.h>

int			pgsm_hist_slots = 0;

/* histogram edges in ms, edge[0] = lower bound of the first step */
static double pgsm_edges[PGSM_MAX_HIST_SLOTS + 1];
static bool pgsm_has_low_slot;


void
pgsm_init_histogram(void)
{
	int			n = pgsm_histogram_buckets;
	double		lo = pgsm_histogram_min,
				hi = pgsm_histogram_max;
	int			i;

	/* steps grow geometrically; with a zero lower bound they start at 1 ms */
	pgsm_has_low_slot = lo > 0;
	if (hi <= lo)
		hi = lo + 1;
	for (i = 0; i <= n; i++)
	{
		if (pgsm_has_low_slot)
			pgsm_edges[i] = lo * pow(hi / lo, (double) i / n);
		else
			pgsm_edges[i] = (i == 0) ? 0 : pow(hi, (double) i / n);
	}
	pgsm_hist_slots = n + 1 + (pgsm_has_low_slot ? 1 : 0);
}

/* lower edge of slot i, in ms (slot 0 starts at 0) */
double
pgsm_hist_edge(int i)
{
	if (pgsm_has_low_slot)
		return (i == 0) ? 0 : pgsm_edges[i - 1];
	return pgsm_edges[i];
}

int
pgsm_hist_slot(double ms)
{
	int			n = pgsm_histogram_buckets;
	int			step;

	if (pgsm_has_low_slot && ms < pgsm_edges[0])
		return 0;
	if (ms >= pgsm_edges[n])
		return pgsm_hist_slots - 1;
	if (pgsm_has_low_slot)
		step = (int) floor(n * log(ms / pgsm_edges[0]) / log(pgsm_edges[n] / pgsm_edges[0]));
	else
		step = (ms < 1.0) ? 0 : (int) floor(n * log(ms) / log(pgsm_edges[n]));
	/* guard against rounding at the edges */
	while (step > 0 && ms < pgsm_edges[step])
		step--;
	while (step < n - 1 && ms >= pgsm_edges[step + 1])
		step++;
	return step + (pgsm_has_low_slot ? 1 : 0);
}
