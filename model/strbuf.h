/*
 * strbuf.h - the one bounded string builder (git's strbuf, curl's dynbuf).
 *
 * A strbuf always holds a NUL-terminated string in buf (an empty one points
 * at a static ""), so buf can be passed to C string functions at any time.
 * Growth stops at cap bytes (including the NUL): crossing it is SP_ELIMIT,
 * and the buffer keeps what it had. Allocation failure is SP_ENOMEM, also
 * leaving the contents intact.
 *
 *   struct strbuf sb = STRBUF_INIT;
 *   if (strbuf_addf(&sb, "%s=%d", key, v) < 0) goto fail;
 *   ... use sb.buf, sb.len ...
 *   strbuf_release(&sb);
 */
#ifndef SPINUP_STRBUF_H
#define SPINUP_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Default cap: big enough for any document we build, small enough to stop a runaway. */
#define STRBUF_DEFAULT_CAP ((size_t)64 << 20)

struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t cap;
};

extern char strbuf_slopbuf[];
#define STRBUF_INIT { strbuf_slopbuf, 0, 0, STRBUF_DEFAULT_CAP }

/* Initialise with a cap (0 means STRBUF_DEFAULT_CAP). */
void strbuf_init(struct strbuf *sb, size_t cap);
/* Free the memory and return to the empty state; accepts released buffers. */
void strbuf_release(struct strbuf *sb);
/* Give the caller the string (malloc'd, never NULL unless out of memory); sb is reset. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
/* Make it empty, keeping the allocation. */
void strbuf_reset(struct strbuf *sb);
/* Ensure room for extra more bytes. 0, SP_ENOMEM or SP_ELIMIT. */
int strbuf_grow(struct strbuf *sb, size_t extra);

int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_addstr(struct strbuf *sb, const char *s);
int strbuf_addch(struct strbuf *sb, int c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Shorten to len bytes (len <= sb->len). */
void strbuf_setlen(struct strbuf *sb, size_t len);

/*
 * Copy src into a fixed array of size dst_size, always NUL-terminated.
 * Returns 0, or SP_ELIMIT when src did not fit (dst then holds a prefix).
 */
int str_copy(char *dst, size_t dst_size, const char *src);

#endif
