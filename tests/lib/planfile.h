/*
 * planfile.h - test-only loader and runner for planner scenario files
 * (tests/data/plan/NNN-name.plan).
 *
 * A scenario is a list of lines, each a verb and key=value fields (values
 * hold no spaces; '#' starts a comment line). Lines build or edit a world
 * (desired pools and workspaces, observed group, agents and containers, last
 * status, instance and pool records, now, seed, config); `run` plans it and
 * appends "== pass N" and the formatted plan (plan_output_format) to the
 * actual output, then feeds the plan forward like the loop would: status
 * changes become the last status, records replace records, a delete_row
 * removes the workspace. The observed world never changes by itself: the
 * scenario edits it between passes. Everything after a line "--- expect" is
 * the expected output.
 *
 *   now N | seed N | config key=N ... | global observe_only=0|1 paused_until=N
 *   pool id= name= asg= slots= warm= min= max= port= image= paused_until= observe_only=
 *        safety_clear=
 *   poolrec pool= window_start= destructive= safety_stopped= stopped_at= clear_handled=
 *   group pool= found= complete= desired= min= max=      (no group line: describe failed)
 *   nogroup pool=
 *   instance pool= id= ip= lc=InService healthy= protected= launch=
 *   agent instance= [pool=] observed= healthy= capacity= error=
 *   container instance= ws= [name=] state=running ready= port= image= sync=ok sync_at=
 *             restore_failed= restarts= msg= pending=none|sync|stop|remove
 *   workspace id= name= pool= state=Running|Stopped image= gen= delete= paused_until=
 *             reconcile= cpu= mem= bucket= prefix=
 *   status ws= gen= phase= instance= addr= class= attempts= next= since= handled=
 *          last_sync= restore_failed= snapshot=
 *   cond ws= type=Scheduled status=True reason= at=
 *   record id= pool= first_seen= idle_since= passes= marked= orphan=
 *   -instance id= | -agent instance= | -container instance= ws= | -workspace id=
 *   run [record=0]       (record=0: plan and print, but feed nothing forward,
 *                         like a crash between act and record)
 *
 * Every function prefixed planfile_ (tests/lib is linked into every test).
 */
#ifndef SPINUP_TESTS_PLANFILE_H
#define SPINUP_TESTS_PLANFILE_H

#include <stddef.h>
#include <stdint.h>

#include "model/plan.h"
#include "model/strbuf.h"

struct planfile;

struct planfile *planfile_new(void);
void planfile_free(struct planfile *pf);

/*
 * Apply one scenario line (no newline). `run` plans and appends to actual.
 * 0, or -1 with a message in err.
 */
int planfile_line(struct planfile *pf, const char *line, struct strbuf *actual, char *err,
		  size_t errsz);

/*
 * Run a whole file: head gets every line before "--- expect" (for rewriting),
 * expected the text after it, actual what the planner produced.
 * 0, or -1 with "path:line: message" in err.
 */
int planfile_exec(const char *path, struct planfile *pf, struct strbuf *head,
		  struct strbuf *expected, struct strbuf *actual, char *err, size_t errsz);

/*
 * The current world as planner input; valid until the next planfile call.
 * Output is freed by the caller with plan_output_release().
 */
void planfile_input(struct planfile *pf, struct plan_input *in);

/* Permute every input collection (pools, workspaces, agents, containers, records). */
void planfile_shuffle(struct planfile *pf, uint64_t seed);

#endif
