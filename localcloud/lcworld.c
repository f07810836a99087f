/*
 * lcworld.c - groups and instances of the local provider (see lcworld.h).
 *
 * Instances live in one array in launch order; ids are the seed's prefix
 * followed by the launch counter in hex, so the array is sorted by id as
 * well as by seq and both lookups are binary searches.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lcworld.h"
#include "../model/banned.h"

#define ADDR_SLOTS 65536             /* x.y of 127.net.x.y */
#define SEQ_HEX 10                   /* hex digits of the counter in an id */

struct lcworld {
	struct lcworld_config cfg;
	struct lcworld_hooks hooks;
	char prefix[8];                  /* 7 hex digits from the seed */
	char az[32];
	struct lcworld_group groups[LCWORLD_MAX_GROUPS];
	size_t ngroups;
	struct lcworld_inst *v;
	size_t n, alloc;
	uint64_t seq;
	unsigned char used[ADDR_SLOTS / 8];
	unsigned cursor;
};

const char *lcworld_state_asg(enum lcworld_state s)
{
	static const char *const n[] = { "Pending", "InService", "Terminating", "Terminated" };
	return s < LCWORLD_STATE_MAX ? n[s] : "Unknown";
}

const char *lcworld_state_ec2(enum lcworld_state s)
{
	static const char *const n[] = { "pending", "running", "shutting-down", "terminated" };
	return s < LCWORLD_STATE_MAX ? n[s] : "unknown";
}

int lcworld_state_code(enum lcworld_state s)
{
	static const int c[] = { 0, 16, 32, 48 };
	return s < LCWORLD_STATE_MAX ? c[s] : 0;
}

int lcworld_new(const struct lcworld_config *cfg, const struct lcworld_hooks *hooks,
		struct lcworld **out, struct err *e)
{
	struct lcworld *w;

	if (cfg->net < 0 || cfg->net > 254 || cfg->boot_ms < 0 || cfg->terminate_ms < 0 ||
	    cfg->gone_ms < 0 || cfg->visibility_ms < 0)
		return err_set(e, SP_EINVAL, "local world: network or delays out of range");
	w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(e, SP_ENOMEM, "out of memory");
	w->cfg = *cfg;
	if (hooks)
		w->hooks = *hooks;
	snprintf(w->prefix, sizeof(w->prefix), "%07" PRIx64, (uint64_t)(cfg->seed & 0xfffffffu));
	snprintf(w->az, sizeof(w->az), "%s", cfg->az && *cfg->az ? cfg->az : "us-east-1a");
	w->cfg.az = w->az;
	w->cursor = 2;
	*out = w;
	return 0;
}

void lcworld_free(struct lcworld *w)
{
	if (!w)
		return;
	free(w->v);
	free(w);
}

void lcworld_set_visibility(struct lcworld *w, int64_t ms)
{
	w->cfg.visibility_ms = ms < 0 ? 0 : ms;
}

int64_t lcworld_visibility(const struct lcworld *w)
{
	return w->cfg.visibility_ms;
}

const char *lcworld_az(const struct lcworld *w)
{
	return w->az;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > LCWORLD_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return 0;
	return 1;
}

int lcworld_add_group(struct lcworld *w, const char *name, int min, int max, int desired,
		      int64_t now, struct err *e)
{
	struct lcworld_group *g;

	if (!name || !name_ok(name))
		return err_set(e, SP_EINVAL, "group name must be 1..%d printable bytes",
			       LCWORLD_NAME_MAX);
	if (min < 0 || min > desired || desired > max || max > LCWORLD_MAX_SIZE)
		return err_set(e, SP_EINVAL, "group '%s': sizes must satisfy 0 <= min (%d) <= "
			       "desired (%d) <= max (%d) <= %d", name, min, desired, max,
			       LCWORLD_MAX_SIZE);
	if (lcworld_find_group(w, name) >= 0)
		return err_set(e, SP_ECONFLICT, "group '%s' is defined twice", name);
	if (w->ngroups == LCWORLD_MAX_GROUPS)
		return err_set(e, SP_ELIMIT, "more than %d groups", LCWORLD_MAX_GROUPS);
	g = &w->groups[w->ngroups++];
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->min_size = min;
	g->max_size = max;
	g->desired = desired;
	g->created_ms = now;
	return 0;
}

size_t lcworld_ngroups(const struct lcworld *w)
{
	return w->ngroups;
}

const struct lcworld_group *lcworld_group(const struct lcworld *w, size_t i)
{
	return i < w->ngroups ? &w->groups[i] : NULL;
}

int lcworld_find_group(const struct lcworld *w, const char *name)
{
	size_t i;

	for (i = 0; name && i < w->ngroups; i++)
		if (!strcmp(w->groups[i].name, name))
			return (int)i;
	return -1;
}

size_t lcworld_ninst(const struct lcworld *w)
{
	return w->n;
}

struct lcworld_inst *lcworld_inst(struct lcworld *w, size_t i)
{
	return i < w->n ? &w->v[i] : NULL;
}

size_t lcworld_seek(const struct lcworld *w, uint64_t seq)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->v[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct lcworld_inst *lcworld_find(struct lcworld *w, const char *id)
{
	uint64_t seq = 0;
	size_t i, k;

	if (!id || strlen(id) != LCWORLD_ID_LEN || strncmp(id, "i-", 2) ||
	    strncmp(id + 2, w->prefix, 7))
		return NULL;
	for (k = 9; k < LCWORLD_ID_LEN; k++) {
		char c = id[k];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return NULL;
		seq = seq * 16 + (uint64_t)d;
	}
	i = lcworld_seek(w, seq);
	return i < w->n && w->v[i].seq == seq ? &w->v[i] : NULL;
}

static int is_live(const struct lcworld_inst *in)
{
	return in->state == LCWORLD_PENDING || in->state == LCWORLD_IN_SERVICE;
}

int lcworld_live(const struct lcworld *w, int g)
{
	size_t i;
	int n = 0;

	for (i = 0; i < w->n; i++)
		n += w->v[i].group == g && is_live(&w->v[i]);
	return n;
}

/* ---------------------------------------------------------------- addresses */

static int slot_used(const struct lcworld *w, unsigned s)
{
	return w->used[s / 8] & (1u << (s % 8));
}

static void slot_set(struct lcworld *w, unsigned s, int on)
{
	if (on)
		w->used[s / 8] |= (unsigned char)(1u << (s % 8));
	else
		w->used[s / 8] &= (unsigned char)~(1u << (s % 8));
}

static void slot_ip(const struct lcworld *w, unsigned s, char out[LCWORLD_IP_MAX])
{
	snprintf(out, LCWORLD_IP_MAX, "127.%d.%u.%u", w->cfg.net, s / 256, s % 256);
}

static unsigned ip_slot(const char *ip)
{
	unsigned a, b, x, y;

	if (sscanf(ip, "%u.%u.%u.%u", &a, &b, &x, &y) != 4 || x > 255 || y > 255)
		return 0;
	return x * 256 + y;
}

/* A free address for a new instance; 0 when every one is taken. */
static int alloc_addr(struct lcworld *w, char out[LCWORLD_IP_MAX])
{
	unsigned tries, s;

	for (tries = 0; tries < ADDR_SLOTS; tries++) {
		s = w->cursor;
		w->cursor = (w->cursor + 1) % ADDR_SLOTS;
		if (s < 2 || s % 256 == 0 || s % 256 == 255 || slot_used(w, s))
			continue;
		slot_ip(w, s, out);
		if (w->hooks.addr_ok && !w->hooks.addr_ok(w->hooks.ctx, out))
			continue;
		slot_set(w, s, 1);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- lifecycle */

static struct lcworld_inst *launch(struct lcworld *w, int g, int64_t now)
{
	struct lcworld_inst *in;
	char ip[LCWORLD_IP_MAX];

	if (w->n >= LCWORLD_MAX_INSTANCES)
		return NULL;
	if (w->n == w->alloc) {
		size_t na = w->alloc ? w->alloc * 2 : 64;
		struct lcworld_inst *nv = realloc(w->v, na * sizeof(*nv));
		if (!nv)
			return NULL;
		w->v = nv;
		w->alloc = na;
	}
	if (!alloc_addr(w, ip))
		return NULL;
	in = &w->v[w->n++];
	memset(in, 0, sizeof(*in));
	in->seq = ++w->seq;
	snprintf(in->id, sizeof(in->id), "i-%s%0*" PRIx64, w->prefix, SEQ_HEX, in->seq);
	snprintf(in->ip, sizeof(in->ip), "%s", ip);
	in->group = g;
	in->state = LCWORLD_PENDING;
	in->healthy = 1;
	in->launched_ms = now;
	in->next_ms = now + w->cfg.boot_ms;
	in->visible_ms = now + w->cfg.visibility_ms;
	return in;
}

static void begin_terminate(struct lcworld *w, struct lcworld_inst *in, int64_t now)
{
	if (!is_live(in))
		return;
	in->state = LCWORLD_TERMINATING;
	in->next_ms = now + w->cfg.terminate_ms;
	if (w->hooks.stop)
		w->hooks.stop(w->hooks.ctx, in);
}

/* Drop forgotten instances, keeping the launch order; frees their addresses. */
static void compact(struct lcworld *w, int64_t now)
{
	size_t i, o = 0;

	for (i = 0; i < w->n; i++) {
		struct lcworld_inst *in = &w->v[i];
		if (in->state == LCWORLD_TERMINATED && now >= in->next_ms && !in->proc_running) {
			slot_set(w, ip_slot(in->ip), 0);
			continue;
		}
		if (o != i)
			w->v[o] = *in;
		o++;
	}
	w->n = o;
}

static void step_instances(struct lcworld *w, int64_t now)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		struct lcworld_inst *in = &w->v[i];
		if (is_live(in) && !in->healthy) {
			begin_terminate(w, in, now);
		} else if (in->state == LCWORLD_PENDING && now >= in->next_ms) {
			in->state = LCWORLD_IN_SERVICE;
			in->next_ms = 0;
			if (w->hooks.start)
				w->hooks.start(w->hooks.ctx, in);
		} else if (in->state == LCWORLD_TERMINATING && now >= in->next_ms) {
			in->state = LCWORLD_TERMINATED;
			in->next_ms = now + w->cfg.gone_ms;
		}
	}
}

/* Scale in group g by k: unprotected live instances, newest or oldest first. */
static void scale_in(struct lcworld *w, int g, int k, int64_t now)
{
	size_t i;

	for (i = 0; i < w->n && k > 0; i++) {
		size_t j = w->cfg.scale_in == LCWORLD_SCALE_IN_NEWEST ? w->n - 1 - i : i;
		struct lcworld_inst *in = &w->v[j];
		if (in->group == g && is_live(in) && !in->protect) {
			begin_terminate(w, in, now);
			k--;
		}
	}
}

void lcworld_tick(struct lcworld *w, int64_t now)
{
	int live[LCWORLD_MAX_GROUPS] = { 0 };
	size_t i;
	int g;

	step_instances(w, now);
	compact(w, now);
	for (i = 0; i < w->n; i++)
		if (is_live(&w->v[i]))
			live[w->v[i].group]++;
	for (g = 0; g < (int)w->ngroups; g++) {
		int want = w->groups[g].desired;
		while (live[g] < want && launch(w, g, now))
			live[g]++;
		if (live[g] > want)
			scale_in(w, g, live[g] - want, now);
	}
}

void lcworld_stop_all(struct lcworld *w, int64_t now)
{
	size_t i;

	for (i = 0; i < w->ngroups; i++)
		w->groups[i].desired = 0;
	for (i = 0; i < w->n; i++)
		begin_terminate(w, &w->v[i], now);
}

/* ---------------------------------------------------------------- mutations */

static int group_or_fail(const struct lcworld *w, const char *group, struct err *e)
{
	int g = lcworld_find_group(w, group);

	if (g < 0)
		err_set(e, SP_ENOTFOUND, "AutoScalingGroup name not found - AutoScalingGroup "
			"%s not found", group ? group : "null");
	return g;
}

int lcworld_set_desired(struct lcworld *w, const char *group, int desired, struct err *e)
{
	struct lcworld_group *gr;
	int g = group_or_fail(w, group, e);

	if (g < 0)
		return SP_ENOTFOUND;
	gr = &w->groups[g];
	if (desired < gr->min_size)
		return err_set(e, SP_EINVAL, "New SetDesiredCapacity value %d is below min value "
			       "%d for the AutoScalingGroup.", desired, gr->min_size);
	if (desired > gr->max_size)
		return err_set(e, SP_EINVAL, "New SetDesiredCapacity value %d is above max value "
			       "%d for the AutoScalingGroup.", desired, gr->max_size);
	gr->desired = desired;
	return 0;
}

int lcworld_set_protection(struct lcworld *w, const char *group, const char *const *ids,
			   size_t n, int protect, struct err *e)
{
	struct lcworld_inst *in;
	size_t i;
	int g = group_or_fail(w, group, e);

	if (g < 0)
		return SP_ENOTFOUND;
	for (i = 0; i < n; i++) {
		in = lcworld_find(w, ids[i]);
		if (!in || in->group != g || !is_live(in))
			return err_set(e, SP_EINVAL, "The instance %.32s is not part of Auto Scaling "
				       "group %s.", ids[i], w->groups[g].name);
	}
	for (i = 0; i < n; i++)
		lcworld_find(w, ids[i])->protect = !!protect;
	return 0;
}

static struct lcworld_inst *member_or_fail(struct lcworld *w, const char *id, struct err *e)
{
	struct lcworld_inst *in = lcworld_find(w, id);

	if (!in || in->state == LCWORLD_TERMINATED) {
		err_set(e, SP_ENOTFOUND, "Instance Id not found - No managed instance found for "
			"instance ID: %.32s", id ? id : "");
		return NULL;
	}
	return in;
}

int lcworld_terminate(struct lcworld *w, const char *id, int decrement, int64_t now, int *group,
		      struct err *e)
{
	struct lcworld_inst *in = member_or_fail(w, id, e);
	struct lcworld_group *gr;

	if (!in)
		return SP_ENOTFOUND;
	gr = &w->groups[in->group];
	if (decrement && is_live(in)) {
		if (gr->desired <= gr->min_size)
			return err_set(e, SP_EINVAL, "Currently, desiredSize equals minSize (%d). "
				       "Terminating instance without replacement will violate "
				       "group's min size constraint. Either set shouldDecrement"
				       "DesiredCapacity flag to false or lower group's min size.",
				       gr->min_size);
		gr->desired--;
	}
	begin_terminate(w, in, now);
	if (group)
		*group = in->group;
	return 0;
}

int lcworld_set_health(struct lcworld *w, const char *id, int healthy, struct err *e)
{
	struct lcworld_inst *in = member_or_fail(w, id, e);

	if (!in)
		return SP_ENOTFOUND;
	if (is_live(in))
		in->healthy = !!healthy;
	return 0;
}

int lcworld_fail(struct lcworld *w, const char *id, int64_t now, struct err *e)
{
	struct lcworld_inst *in = member_or_fail(w, id, e);

	if (!in)
		return SP_ENOTFOUND;
	begin_terminate(w, in, now);
	return 0;
}
