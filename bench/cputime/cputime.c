/*
 * cputime.c: what does one reading of a backend's own CPU time cost?
 *
 * Each method is called `batch` times between two readings of this
 * process's CPU clock (CLOCK_PROCESS_CPUTIME_ID: CPU time, not wall time,
 * so other load on a shared machine hardly moves it); ns per call = the
 * difference / batch.  Methods are measured round-robin, `reps` times each,
 * and the median (with the 10th and 90th percentiles) is printed.
 *
 * A second table shows what each clock can resolve: the smallest non-zero
 * step between two successive readings, and how many of 1,000 readings
 * around a ~2 us busy loop saw no time pass (a tick-sampled clock sees 0
 * for most short statements and a whole tick for a few).
 *
 *   cc -O2 -Wall -o cputime cputime.c && ./cputime [reps] [batch]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>

static int	schedstat_fd = -1;
static int	perf_fd = -1;
static volatile uint64_t sink;

static uint64_t
ns_of(const struct timespec *t)
{
	return (uint64_t) t->tv_sec * 1000000000u + t->tv_nsec;
}

static uint64_t
cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return ns_of(&t);
}

static uint64_t
tv_ns(const struct timeval *a, const struct timeval *b)
{
	return (uint64_t) a->tv_sec * 1000000000u + a->tv_usec * 1000u +
		(uint64_t) b->tv_sec * 1000000000u + b->tv_usec * 1000u;
}

/* each returns user+sys CPU time in ns (or a raw value for the baselines) */
static uint64_t
m_rusage_self(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return tv_ns(&r.ru_utime, &r.ru_stime);
}

static uint64_t
m_rusage_thread(void)
{
	struct rusage r;

	getrusage(RUSAGE_THREAD, &r);
	return tv_ns(&r.ru_utime, &r.ru_stime);
}

static uint64_t
m_thread_cputime(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return ns_of(&t);
}

static uint64_t
m_process_cputime(void)
{
	return cpu_now();
}

static uint64_t
m_times(void)
{
	struct tms t;

	times(&t);
	return (uint64_t) (t.tms_utime + t.tms_stime) * (1000000000u / sysconf(_SC_CLK_TCK));
}

static uint64_t
m_schedstat_pread(void)
{
	char		buf[96];
	ssize_t		n = pread(schedstat_fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return strtoull(buf, NULL, 10);
}

static uint64_t
m_stat_open(void)
{
	char		buf[1024];
	int			fd = open("/proc/thread-self/stat", O_RDONLY);
	ssize_t		n = read(fd, buf, sizeof(buf) - 1);
	unsigned long ut = 0,
				st = 0;
	char	   *p;

	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	p = strrchr(buf, ')');
	if (p)
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	return (uint64_t) (ut + st) * (1000000000u / sysconf(_SC_CLK_TCK));
}

static uint64_t
m_perf_read(void)
{
	uint64_t	v = 0;

	if (read(perf_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static uint64_t
m_monotonic(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ns_of(&t);
}

static uint64_t
m_getppid(void)
{
	return syscall(SYS_getppid);
}

typedef struct Method
{
	const char *name;
	uint64_t	(*fn) (void);
	const char *note;
	int			usable;
} Method;

static Method methods[] = {
	{"getrusage(RUSAGE_SELF)", m_rusage_self, "user and sys", 1},
	{"getrusage(RUSAGE_THREAD)", m_rusage_thread, "user and sys", 1},
	{"clock_gettime(CLOCK_THREAD_CPUTIME_ID)", m_thread_cputime, "user+sys only", 1},
	{"clock_gettime(CLOCK_PROCESS_CPUTIME_ID)", m_process_cputime, "user+sys only", 1},
	{"times()", m_times, "user and sys, clock ticks", 1},
	{"pread /proc/thread-self/schedstat (fd kept)", m_schedstat_pread, "user+sys only", 1},
	{"open+read+close /proc/thread-self/stat", m_stat_open, "user and sys, clock ticks", 1},
	{"read() of a perf task-clock event", m_perf_read, "user+sys only", 1},
	{"baseline: syscall(SYS_getppid)", m_getppid, "a bare system call", 1},
	{"baseline: clock_gettime(CLOCK_MONOTONIC)", m_monotonic, "vDSO, no system call", 1},
};
#define NMETHODS (int) (sizeof(methods) / sizeof(methods[0]))

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static void
open_sources(void)
{
	struct perf_event_attr attr;

	schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY);
	if (schedstat_fd < 0)
		methods[5].usable = 0;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_TASK_CLOCK;
	attr.exclude_kernel = 0;
	perf_fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
	if (perf_fd < 0)
	{
		attr.exclude_kernel = 1;	/* perf_event_paranoid >= 2 */
		attr.exclude_hv = 1;
		perf_fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
	}
	if (perf_fd < 0)
		methods[7].usable = 0;
}

/* smallest non-zero step, and zero deltas over a ~2 us busy loop */
static void
resolution(Method *m)
{
	uint64_t	step = UINT64_MAX,
				prev = m->fn();
	int			zeros = 0;

	for (int i = 0; i < 200000; i++)
	{
		uint64_t	v = m->fn();

		if (v != prev && v - prev < step)
			step = v - prev;
		prev = v;
	}
	for (int i = 0; i < 1000; i++)
	{
		uint64_t	a = m->fn(),
					t0 = m_monotonic();

		while (m_monotonic() - t0 < 2000)
			sink++;
		zeros += m->fn() == a;
	}
	if (step == UINT64_MAX)
		printf("%-45s %14s %8d\n", m->name, "never moved", zeros);
	else
		printf("%-45s %11.3f us %8d\n", m->name, step / 1000.0, zeros);
}

int
main(int argc, char **argv)
{
	int			reps = argc > 1 ? atoi(argv[1]) : 301;
	int			batch = argc > 2 ? atoi(argv[2]) : 2000;
	uint64_t   *ns = calloc((size_t) NMETHODS * reps, sizeof(uint64_t));

	open_sources();
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NMETHODS; k++)
		{
			uint64_t	t0,
						t1;

			if (!methods[k].usable)
				continue;
			t0 = cpu_now();
			for (int i = 0; i < batch; i++)
				sink += methods[k].fn();
			t1 = cpu_now();
			ns[(size_t) k * reps + r] = t1 - t0;
		}

	printf("== ns per call: CPU time of %d calls / %d, %d repetitions round-robin\n",
		   batch, batch, reps);
	printf("%-45s %8s %8s %8s  %s\n", "method", "median", "p10", "p90", "gives");
	for (int k = 0; k < NMETHODS; k++)
	{
		uint64_t   *v = ns + (size_t) k * reps;

		if (!methods[k].usable)
		{
			printf("%-45s %8s %8s %8s  (not available here)\n", methods[k].name, "-", "-", "-");
			continue;
		}
		qsort(v, reps, sizeof(uint64_t), cmp_u64);
		printf("%-45s %8.1f %8.1f %8.1f  %s\n", methods[k].name,
			   (double) v[reps / 2] / batch, (double) v[reps / 10] / batch,
			   (double) v[reps * 9 / 10] / batch, methods[k].note);
	}

	printf("\n== resolution: smallest step between readings; readings of 1000 ~2 us loops that saw 0\n");
	for (int k = 0; k < 8; k++)
		if (methods[k].usable)
			resolution(&methods[k]);
	free(ns);
	return 0;
}
