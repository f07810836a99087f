/*
 * wsstub.h - the built-in workspace stand-in ("spinup-agent workspace"):
 * a tiny HTTP server over one folder, used by the demo and the tests in
 * place of code-server.
 *
 *   GET /              HTML page listing the files of the folder
 *   GET /files/NAME    the file's bytes
 *   PUT /files/NAME    write the file (body <= WSSTUB_FILE_MAX bytes); 201
 *
 * NAME is [A-Za-z0-9._-]{1,128} not starting with '.'. Runs until SIGTERM
 * or SIGINT; returns 0, or a negative SP_E* code when it cannot listen.
 */
#ifndef SPINUP_AGENT_WSSTUB_H
#define SPINUP_AGENT_WSSTUB_H

#include "../model/err.h"

#define WSSTUB_FILE_MAX (1024 * 1024)
#define WSSTUB_FILES_MAX 1000          /* files listed on the page */

int wsstub_run(const char *listen, const char *dir, struct err *e);

#endif
