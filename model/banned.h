/*
 * banned.h - functions we never call (git's banned.h).
 *
 * Each of these either writes without a bound or parses without reporting
 * errors. Use strbuf_addf(), snprintf(), strtol()/strtoll() with end-pointer
 * checks, and strtok_r() instead. Included last by every .c of ours.
 */
#ifndef SPINUP_BANNED_H
#define SPINUP_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef gets
#define gets(x) BANNED(gets)

#endif
