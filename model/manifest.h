/*
 * manifest.h - decoding YAML manifests (apiVersion spinup.dev/v1, kinds
 * Pool and Workspace) into the same structs database rows decode into.
 *
 * Pure: bytes in, specs and diagnostics out (libyaml, no I/O). The caller
 * reads the file and passes its name for the diagnostics.
 *
 * Every error in a file is reported, not just the first, each as a struct
 * diag printed "FILE:LINE:COL: FIELD.PATH: message". A document with any
 * error is not added to the set. The reference is manifests/README.md.
 */
#ifndef SPINUP_MANIFEST_H
#define SPINUP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"
#include "strbuf.h"

#define MANIFEST_API_VERSION "spinup.dev/v1"
#define MANIFEST_MAX_BYTES ((size_t)4 << 20)   /* one file */
#define MANIFEST_MAX_DOCS 1000                  /* documents in one file */
#define MANIFEST_MAX_DIAGS 500                  /* kept per decode; the rest are counted */
#define MANIFEST_FILE_MAX 255

struct diag {
	char file[MANIFEST_FILE_MAX + 1];
	int line;     /* 1-based; 0 = whole file */
	int col;      /* 1-based */
	char field[128];  /* "spec.resources.cpu"; "" when not about a field */
	char msg[256];
};

struct diag_list {
	struct diag *v;
	size_t n, alloc;
	size_t dropped;   /* diagnostics past MANIFEST_MAX_DIAGS */
};

void diag_list_init(struct diag_list *d);
void diag_list_release(struct diag_list *d);
/* Append; returns 0 or SP_ENOMEM. Past the limit counts into dropped. */
int diag_add(struct diag_list *d, const char *file, int line, int col, const char *field,
	     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* "FILE:LINE:COL: FIELD: message\n" for each, plus a line for dropped ones. */
int diag_list_format(const struct diag_list *d, struct strbuf *out);

enum manifest_kind { MANIFEST_POOL, MANIFEST_WORKSPACE, MANIFEST_KIND_MAX };

const char *manifest_kind_name(enum manifest_kind k); /* "Pool", "Workspace" */

/* manifest_doc.present bits: which spec fields the file wrote. */
enum {
	MF_POOL_ASG = 1u << 0,
	MF_POOL_REGION = 1u << 1,
	MF_POOL_SLOTS = 1u << 2,
	MF_POOL_WARM = 1u << 3,
	MF_POOL_MIN = 1u << 4,
	MF_POOL_MAX = 1u << 5,
	MF_POOL_PORT = 1u << 6,
	MF_POOL_IMAGE = 1u << 7,
	MF_WS_OWNER = 1u << 0,
	MF_WS_POOL = 1u << 1,
	MF_WS_STATE = 1u << 2,
	MF_WS_TEMPLATE = 1u << 3,
	MF_WS_IMAGE = 1u << 4,
	MF_WS_CPU = 1u << 5,
	MF_WS_MEMORY = 1u << 6,
	MF_WS_BUCKET = 1u << 7,
	MF_WS_PREFIX = 1u << 8,
	MF_WS_IDLE = 1u << 9,
	MF_WS_LABELS = 1u << 10
};

struct manifest_doc {
	enum manifest_kind kind;
	char file[MANIFEST_FILE_MAX + 1];
	int line, col;                 /* where the document starts */
	int name_line, name_col;       /* where metadata.name's value is */
	struct pool_spec pool;         /* kind == MANIFEST_POOL */
	struct workspace_spec ws;      /* kind == MANIFEST_WORKSPACE */
	uint32_t present;              /* bit per spec field written in the file (manifest.c) */
};

struct manifest_set {
	struct manifest_doc *docs;
	size_t n, alloc;
};

void manifest_set_init(struct manifest_set *s);
void manifest_set_release(struct manifest_set *s);

/*
 * Decode every document in buf (len bytes, file names it for diagnostics)
 * and append the valid ones to set. Returns 0 when the file had no error,
 * SP_EINVAL when diags received at least one, SP_ELIMIT when len or the
 * document count is over the limit (also as a diag), SP_ENOMEM.
 */
int manifest_decode(const char *file, const char *buf, size_t len, struct manifest_set *set,
		    struct diag_list *diags);

/*
 * Cross-document checks over everything one apply will write: duplicate
 * pool names, duplicate workspace names within a pool. Diagnostics point at
 * the second occurrence. 0 or SP_EINVAL.
 */
int manifest_check_set(const struct manifest_set *set, struct diag_list *diags);

#endif
