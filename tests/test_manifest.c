/*
 * test_manifest: YAML manifests into specs. Every error class with its
 * exact position and field path, round trips, limits, hostile input, the
 * shipped examples, and a mutation sweep that must never crash.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/err.h"
#include "model/manifest.h"
#include "model/strbuf.h"

/* Decode text; the formatted diagnostics land in out (caller releases). */
static int decode(const char *text, struct manifest_set *set, struct strbuf *out)
{
	struct diag_list d;
	int rc;

	diag_list_init(&d);
	rc = manifest_decode("m.yaml", text, strlen(text), set, &d);
	if (out)
		assert_int_equal(diag_list_format(&d, out), 0);
	diag_list_release(&d);
	return rc;
}

/* Assert that decoding text reports exactly the diagnostic line want (among others). */
static void expect_diag(const char *text, const char *want)
{
	struct manifest_set set;
	struct strbuf out = STRBUF_INIT;

	manifest_set_init(&set);
	assert_int_equal(decode(text, &set, &out), SP_EINVAL);
	if (!strstr(out.buf, want))
		fail_msg("wanted diagnostic\n  %s\ngot\n%s", want, out.buf);
	assert_int_equal(set.n, 0);
	strbuf_release(&out);
	manifest_set_release(&set);
}

static const char ws_ok[] =
	"apiVersion: spinup.dev/v1\n"
	"kind: Workspace\n"
	"metadata:\n"
	"  name: alice-blog\n"
	"spec:\n"
	"  owner: alice\n"
	"  pool: default\n"
	"  state: Stopped\n"
	"  template: node\n"
	"  image: codercom/code-server:4.23.1\n"
	"  resources:\n"
	"    cpu: 1.5\n"
	"    memoryMiB: 4096\n"
	"  storage:\n"
	"    bucket: spinup-workspaces\n"
	"    prefix: alice/blog/\n"
	"  idleTimeoutSeconds: 1800\n"
	"  labels:\n"
	"    team: web\n"
	"    tier: gold\n";

static void test_manifest__workspace_round_trip(void **state)
{
	struct manifest_set set;
	const struct workspace_spec *w;

	(void)state;
	manifest_set_init(&set);
	assert_int_equal(decode(ws_ok, &set, NULL), 0);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.docs[0].kind, MANIFEST_WORKSPACE);
	assert_int_equal(set.docs[0].line, 1);
	w = &set.docs[0].ws;
	assert_string_equal(w->name, "alice-blog");
	assert_string_equal(w->owner, "alice");
	assert_string_equal(w->pool, "default");
	assert_int_equal(w->state, WS_STATE_STOPPED);
	assert_string_equal(w->template_name, "node");
	assert_string_equal(w->image, "codercom/code-server:4.23.1");
	assert_int_equal(w->cpu_milli, 1500);
	assert_int_equal(w->memory_mib, 4096);
	assert_string_equal(w->bucket, "spinup-workspaces");
	assert_string_equal(w->prefix, "alice/blog/");
	assert_int_equal(w->idle_timeout_s, 1800);
	assert_int_equal(w->nlabels, 2);
	assert_string_equal(w->labels[1].key, "tier");
	assert_string_equal(w->labels[1].value, "gold");
	assert_true(set.docs[0].present & MF_WS_CPU);
	assert_true(set.docs[0].present & MF_WS_LABELS);
	assert_int_equal(workspace_spec_validate(w, &(struct err){ 0 }), 0);
	manifest_set_release(&set);
}

static void test_manifest__defaults_and_pool(void **state)
{
	struct manifest_set set;
	static const char text[] =
		"apiVersion: spinup.dev/v1\n"
		"kind: Pool\n"
		"metadata: {name: default}\n"
		"spec: {asgName: spinup-default, region: us-east-1, instanceSlots: 2, maxInstances: 5}\n"
		"---\n"
		"apiVersion: spinup.dev/v1\n"
		"kind: Workspace\n"
		"metadata:\n"
		"  name: bob\n"
		"spec:\n"
		"  owner: bob\n"
		"  pool: default\n"
		"---\n";   /* a trailing empty document is skipped */
	struct workspace_spec def;

	(void)state;
	manifest_set_init(&set);
	assert_int_equal(decode(text, &set, NULL), 0);
	assert_int_equal(set.n, 2);
	assert_int_equal(set.docs[0].kind, MANIFEST_POOL);
	assert_string_equal(set.docs[0].pool.name, "default");
	assert_int_equal(set.docs[0].pool.slots_per_instance, 2);
	assert_int_equal(set.docs[0].pool.max_instances, 5);
	assert_int_equal(set.docs[0].pool.agent_port, 7070);
	assert_false(set.docs[0].present & MF_POOL_WARM);
	assert_int_equal(set.docs[1].line, 6);
	workspace_spec_defaults(&def);
	assert_int_equal(set.docs[1].ws.state, WS_STATE_RUNNING);
	assert_int_equal(set.docs[1].ws.cpu_milli, def.cpu_milli);
	assert_int_equal(set.docs[1].ws.memory_mib, def.memory_mib);
	assert_string_equal(set.docs[1].ws.image, "");
	manifest_set_release(&set);
}

static void test_manifest__cpu_forms(void **state)
{
	static const struct {
		const char *v;
		int milli;
	} ok[] = { { "500m", 500 }, { "\"2\"", 2000 }, { "1.5", 1500 }, { "0.25", 250 }, { "64", 64000 } };
	static const char *const bad[] = { "-1", "1.2345", "abc", "m", "1e3", "65", "50m" };
	char text[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct manifest_set set;
		snprintf(text, sizeof(text),
			 "apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
			 "spec:\n  owner: o\n  pool: p\n  resources:\n    cpu: %s\n", ok[i].v);
		manifest_set_init(&set);
		assert_int_equal(decode(text, &set, NULL), 0);
		assert_int_equal(set.docs[0].ws.cpu_milli, ok[i].milli);
		manifest_set_release(&set);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
			 "spec:\n  owner: o\n  pool: p\n  resources:\n    cpu: %s\n", bad[i]);
		expect_diag(text, "m.yaml:8:10: spec.resources.cpu: ");
	}
}

static void test_manifest__unknown_field_with_suggestion(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  imgae: x\n",
		    "m.yaml:7:3: spec.imgae: unknown field (did you mean 'image'?)");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  colour: blue\n",
		    "m.yaml:7:3: spec.colour: unknown field; known fields: owner, pool");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "stats: {}\nspec:\n  owner: o\n  pool: p\n",
		    "m.yaml:4:1: stats: unknown field; known fields: apiVersion, kind, metadata, spec");
}

/* What `spinctl get -o yaml` prints applies back: status and the read-only metadata are ignored. */
static void test_manifest__get_output_decodes(void **state)
{
	static const char text[] =
		"apiVersion: spinup.dev/v1\nkind: Workspace\n"
		"metadata: {name: w, pool: p, id: 7, generation: 3, createdAt: \"2026-01-01T00:00:00Z\","
		" deletionRequestedAt: null, pausedUntil: null, reconcileRequestedAt: null}\n"
		"spec: {owner: o, pool: p, resources: {cpu: 1000m, memoryMiB: 2048}}\n"
		"status: {phase: READY, instance: i-0123456789abcdef0}\n";
	struct manifest_set set;
	struct diag_list d;

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", text, strlen(text), &set, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.docs[0].ws.name, "w");
	assert_int_equal(set.docs[0].ws.id, 0);   /* the id is the server's, never taken */
	diag_list_release(&d);
	manifest_set_release(&set);
}

static void test_manifest__wrong_types(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n"
		    "spec:\n  asgName: a\n  region: r\n  maxInstances: ten\n",
		    "m.yaml:7:17: spec.maxInstances: expected an integer, found 'ten'");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n"
		    "spec:\n  asgName: [a, b]\n  region: r\n",
		    "m.yaml:5:12: spec.asgName: expected a scalar, found a list");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n"
		    "spec:\n  asgName: a\n  region: r\n  minInstances: \"1\"\n",
		    "m.yaml:7:17: spec.minInstances: expected an integer");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  resources: 4\n",
		    "m.yaml:7:14: spec.resources: expected a mapping, found a scalar");
	expect_diag("- a\n- b\n", "m.yaml:1:1: a document must be a mapping");
}

static void test_manifest__missing_required(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  pool: p\n",
		    "m.yaml:5:3: spec.owner: required field is missing");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {}\n"
		    "spec:\n  owner: o\n  pool: p\n",
		    "m.yaml:3:11: metadata.name: required field is missing");
	expect_diag("kind: Workspace\nmetadata: {name: w}\nspec:\n  owner: o\n  pool: p\n",
		    "m.yaml:1:1: apiVersion: required field is missing");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n",
		    "m.yaml:1:1: spec: required field is missing");
}

static void test_manifest__invalid_names_and_ranges(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: Bad_Name\n"
		    "spec:\n  owner: o\n  pool: p\n",
		    "m.yaml:4:9: metadata.name: 'Bad_Name' is not a DNS label");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: -w\n"
		    "spec:\n  owner: o\n  pool: p\n",
		    "m.yaml:4:9: metadata.name: '-w' is not a DNS label: it must start and end");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: \"w\\u00e9\"\n"
		    "spec:\n  owner: o\n  pool: p\n",
		    "metadata.name: 'w\xc3\xa9' is not a DNS label");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  resources:\n    memoryMiB: 1\n",
		    "m.yaml:8:16: spec.resources.memoryMiB: 1 is out of range 256..262144");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n"
		    "spec:\n  asgName: a\n  region: r\n  instanceSlots: 0\n",
		    "m.yaml:7:18: spec.instanceSlots: 0 is out of range 1..64");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Pool\nmetadata: {name: p}\n"
		    "spec:\n  asgName: a\n  region: r\n  minInstances: 5\n  maxInstances: 2\n",
		    "m.yaml:7:3: spec.minInstances: 5 is greater than maxInstances 2");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  state: running\n",
		    "m.yaml:7:10: spec.state: must be Running or Stopped, not 'running'");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  storage: {bucket: Not_A_Bucket}\n",
		    "spec.storage.bucket: 'Not_A_Bucket' is not a valid S3 bucket name");
}

static void test_manifest__api_version_and_kind(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v2\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n",
		    "m.yaml:1:13: apiVersion: unsupported apiVersion 'spinup.dev/v2'");
	expect_diag("apiVersion: spinup.dev/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {}\n",
		    "m.yaml:2:7: kind: unsupported kind 'Deployment' (supported: Pool, Workspace)");
}

static void test_manifest__duplicate_keys(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  owner: q\n",
		    "m.yaml:7:3: spec.owner: duplicate field (first at line 5)");
}

static void test_manifest__duplicate_label_keys(void **state)
{
	(void)state;
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: o\n  pool: p\n  labels:\n    team: a\n    team: b\n",
		    "m.yaml:9:5: spec.labels.team: duplicate field (first at line 8)");
}

static void test_manifest__every_error_is_reported(void **state)
{
	struct manifest_set set;
	struct diag_list d;
	static const char text[] =
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: good}\n"
		"spec:\n  owner: o\n  pool: p\n"
		"---\n"
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata:\n  name: Bad_Name\n"
		"spec:\n  owner: dave\n  pool: default\n  resources:\n    cpu: 1000m\n"
		"    memoryMiB: 1\n  colour: blue\n";

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", text, strlen(text), &set, &d), SP_EINVAL);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.v[0].line, 11);
	assert_string_equal(d.v[0].field, "metadata.name");
	assert_int_equal(d.v[1].line, 17);
	assert_string_equal(d.v[1].field, "spec.resources.memoryMiB");
	assert_int_equal(d.v[2].line, 18);
	assert_string_equal(d.v[2].field, "spec.colour");
	/* The good document decoded; the caller writes nothing when rc != 0. */
	assert_int_equal(set.n, 1);
	diag_list_release(&d);
	manifest_set_release(&set);
}

static void test_manifest__malformed_yaml_has_position(void **state)
{
	struct manifest_set set;
	struct diag_list d;
	static const char text[] = "apiVersion: spinup.dev/v1\nkind: [unclosed\n";

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", text, strlen(text), &set, &d), SP_EINVAL);
	assert_int_equal(d.n, 1);
	assert_true(d.v[0].line >= 2);
	assert_true(d.v[0].col >= 1);
	assert_non_null(strstr(d.v[0].msg, "malformed YAML"));
	diag_list_release(&d);
	manifest_set_release(&set);

	expect_diag("a: b\n  c: d\n", "m.yaml:2:4: malformed YAML: mapping values are not allowed");
}

static void test_manifest__limits(void **state)
{
	struct manifest_set set;
	struct diag_list d;
	struct strbuf big = STRBUF_INIT;
	int i;

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	/* Too big: refused before parsing. */
	assert_int_equal(manifest_decode("m.yaml", "x", MANIFEST_MAX_BYTES + 1, &set, &d), SP_ELIMIT);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 0);
	diag_list_release(&d);

	/* Too many documents. */
	for (i = 0; i < MANIFEST_MAX_DOCS + 1; i++)
		assert_int_equal(strbuf_addf(&big, "---\napiVersion: spinup.dev/v1\nkind: Workspace\n"
					     "metadata: {name: w%d}\nspec: {owner: o, pool: p}\n", i), 0);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", big.buf, big.len, &set, &d), SP_ELIMIT);
	assert_non_null(strstr(d.v[d.n - 1].msg, "more than 1000 documents"));
	diag_list_release(&d);
	manifest_set_release(&set);

	/* Too many diagnostics: kept up to the limit, the rest counted. */
	strbuf_reset(&big);
	for (i = 0; i < MANIFEST_MAX_DIAGS + 50; i++)
		assert_int_equal(strbuf_addf(&big, "---\nkind: Nope\n"), 0);
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", big.buf, big.len, &set, &d), SP_EINVAL);
	assert_int_equal(d.n, MANIFEST_MAX_DIAGS);
	assert_true(d.dropped > 0);
	strbuf_reset(&big);
	assert_int_equal(diag_list_format(&d, &big), 0);
	assert_non_null(strstr(big.buf, "more errors"));
	diag_list_release(&d);
	manifest_set_release(&set);
	strbuf_release(&big);
}

static void test_manifest__hostile_values(void **state)
{
	struct manifest_set set;
	struct diag_list d;
	struct strbuf t = STRBUF_INIT;
	static const char inject[] =
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		"spec:\n  owner: \"o'; DROP TABLE workspaces; --\"\n  pool: p\n";
	size_t i;

	(void)state;
	/* An SQL-looking owner is just text: stored verbatim. */
	manifest_set_init(&set);
	assert_int_equal(decode(inject, &set, NULL), 0);
	assert_string_equal(set.docs[0].ws.owner, "o'; DROP TABLE workspaces; --");
	manifest_set_release(&set);

	/* A 3 MB scalar: a clean length error, not a crash. */
	assert_int_equal(strbuf_addstr(&t, "apiVersion: spinup.dev/v1\nkind: Workspace\n"
				       "metadata: {name: w}\nspec:\n  pool: p\n  owner: "), 0);
	for (i = 0; i < 3u << 20; i++)
		assert_int_equal(strbuf_addch(&t, 'a'), 0);
	assert_int_equal(strbuf_addch(&t, '\n'), 0);
	expect_diag(t.buf, "m.yaml:6:10: spec.owner: is 3145728 bytes long, at most 128 allowed");

	/* NUL bytes and control characters. */
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("m.yaml", "kind: \0Pool\n", 12, &set, &d) < 0, 1);
	assert_true(d.n > 0);
	diag_list_release(&d);
	manifest_set_release(&set);
	expect_diag("apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		    "spec:\n  owner: \"a\\tb\"\n  pool: p\n",
		    "spec.owner: must not contain control characters");
	strbuf_release(&t);
}

static void test_manifest__duplicate_names_across_a_set(void **state)
{
	struct manifest_set set;
	struct diag_list d;
	static const char a[] =
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		"spec: {owner: o, pool: p}\n"
		"---\n"
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		"spec: {owner: o, pool: other}\n";   /* same name, other pool: fine */
	static const char b[] =
		"apiVersion: spinup.dev/v1\nkind: Workspace\nmetadata: {name: w}\n"
		"spec: {owner: x, pool: p}\n";

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	assert_int_equal(manifest_decode("a.yaml", a, strlen(a), &set, &d), 0);
	assert_int_equal(manifest_check_set(&set, &d), 0);
	assert_int_equal(manifest_decode("b.yaml", b, strlen(b), &set, &d), 0);
	assert_int_equal(manifest_check_set(&set, &d), SP_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].file, "b.yaml");
	assert_int_equal(d.v[0].line, 3);    /* at metadata.name's value */
	assert_int_equal(d.v[0].col, 18);
	assert_non_null(strstr(d.v[0].msg, "first declared at a.yaml:3"));
	diag_list_release(&d);
	manifest_set_release(&set);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const char *top(void)
{
	const char *t = getenv("SPINUP_TOP");
	return t && t[0] ? t : ".";
}

static void test_manifest__examples_decode(void **state)
{
	static const char *const files[] = { "pool.yaml", "workspaces.yaml" };
	struct manifest_set set;
	struct diag_list d;
	char path[1024];
	size_t i, len = 0;

	(void)state;
	manifest_set_init(&set);
	diag_list_init(&d);
	for (i = 0; i < 2; i++) {
		char *buf;
		snprintf(path, sizeof(path), "%s/manifests/examples/%s", top(), files[i]);
		buf = slurp(path, &len);
		if (!buf)
			fail_msg("cannot read %s", path);
		assert_int_equal(manifest_decode(path, buf, len, &set, &d), 0);
		free(buf);
	}
	assert_int_equal(manifest_check_set(&set, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(set.n, 4);
	assert_string_equal(set.docs[0].pool.name, "default");
	assert_string_equal(set.docs[1].ws.name, "alice-blog");
	assert_string_equal(set.docs[3].ws.name, "carol-notes");
	assert_int_equal(set.docs[3].ws.state, WS_STATE_STOPPED);
	diag_list_release(&d);
	manifest_set_release(&set);
}

/* Decode every prefix and a set of byte flips of a valid file: never a crash. */
static void test_manifest__mutations_never_crash(void **state)
{
	static const char flips[] = { ':', '-', '\n', ' ', '"', '[', '{', '&', '*', '!', '\0', '\t' };
	size_t n = strlen(ws_ok), i, j;
	char *buf = malloc(n);
	unsigned long decoded = 0;

	(void)state;
	assert_non_null(buf);
	for (i = 0; i <= n; i++) {
		struct manifest_set set;
		struct diag_list d;
		manifest_set_init(&set);
		diag_list_init(&d);
		(void)manifest_decode("m.yaml", ws_ok, i, &set, &d);
		decoded += set.n;
		diag_list_release(&d);
		manifest_set_release(&set);
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < sizeof(flips); j++) {
			struct manifest_set set;
			struct diag_list d;
			int rc;
			memcpy(buf, ws_ok, n);
			buf[i] = flips[j];
			manifest_set_init(&set);
			diag_list_init(&d);
			rc = manifest_decode("m.yaml", buf, n, &set, &d);
			/* An error always comes with a diagnostic. */
			if (rc == SP_EINVAL)
				assert_true(d.n > 0);
			diag_list_release(&d);
			manifest_set_release(&set);
		}
	}
	assert_true(decoded > 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest__workspace_round_trip),
		cmocka_unit_test(test_manifest__defaults_and_pool),
		cmocka_unit_test(test_manifest__cpu_forms),
		cmocka_unit_test(test_manifest__unknown_field_with_suggestion),
		cmocka_unit_test(test_manifest__get_output_decodes),
		cmocka_unit_test(test_manifest__wrong_types),
		cmocka_unit_test(test_manifest__missing_required),
		cmocka_unit_test(test_manifest__invalid_names_and_ranges),
		cmocka_unit_test(test_manifest__api_version_and_kind),
		cmocka_unit_test(test_manifest__duplicate_keys),
		cmocka_unit_test(test_manifest__duplicate_label_keys),
		cmocka_unit_test(test_manifest__every_error_is_reported),
		cmocka_unit_test(test_manifest__malformed_yaml_has_position),
		cmocka_unit_test(test_manifest__limits),
		cmocka_unit_test(test_manifest__hostile_values),
		cmocka_unit_test(test_manifest__duplicate_names_across_a_set),
		cmocka_unit_test(test_manifest__examples_decode),
		cmocka_unit_test(test_manifest__mutations_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
