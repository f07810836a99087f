/* bench_manifest: decode a generated file of 1000 workspaces, N times. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/manifest.h"
#include "model/strbuf.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	struct strbuf text = STRBUF_INIT;
	const int docs = 1000, rounds = 20;
	double t0, dt;
	int i;

	for (i = 0; i < docs; i++)
		if (strbuf_addf(&text,
				"---\napiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: ws-%d\n"
				"spec:\n  owner: user%d\n  pool: default\n  state: Running\n"
				"  resources:\n    cpu: 1500m\n    memoryMiB: 4096\n"
				"  storage:\n    bucket: spinup-workspaces\n    prefix: user%d/ws-%d/\n"
				"  labels:\n    team: t%d\n",
				i, i, i, i, i % 7))
			return 1;
	t0 = now_s();
	for (i = 0; i < rounds; i++) {
		struct manifest_set set;
		struct diag_list d;

		manifest_set_init(&set);
		diag_list_init(&d);
		if (manifest_decode("bench.yaml", text.buf, text.len, &set, &d) ||
		    manifest_check_set(&set, &d) || set.n != (size_t)docs) {
			fprintf(stderr, "bench_manifest: decode failed\n");
			return 1;
		}
		diag_list_release(&d);
		manifest_set_release(&set);
	}
	dt = (now_s() - t0) / rounds;
	printf("| manifest decode, 1000 workspaces (%zu KiB) | %.1f | ms |\n", text.len / 1024,
	       dt * 1e3);
	printf("| manifest decode throughput | %.0f | docs/s |\n", docs / dt);
	strbuf_release(&text);
	return 0;
}
