/* Exit statuses shared by every mcast program (the contract in mcast(1) pages), and lib's one error convention. */
#ifndef MC_EXITCODE_H
#define MC_EXITCODE_H

/*
 * Errors in lib (new code follows this; older modules are being brought to it):
 *
 *   A function that can fail returns 0 (or a count, or 1 for "yes") on
 *   success and a negative errno-like code on failure (-ENOMEM, -EIO,
 *   -EBADMSG for damaged-but-resumable data, -EINVAL for "not ours"), and
 *   writes the reason, naming the file, device or address at fault, into a
 *   caller's buffer (char *err, size_t errlen): "PKG.part: No space left on
 *   device". An allocation failure is "out of memory", never an I/O error.
 *   lib never prints and never exits; cmd/ says the reason (mc_err, or
 *   mc_err_sys where errno is the reason) and picks the exit status below
 *   from the code (-EBADMSG: MC_EXIT_INCOMPLETE).
 *
 *   Callbacks and ops tables (lib/sink.h) follow the same rule. A pure core
 *   (sender, receiver) reports failures of its callbacks as events.
 */

#define MC_EXIT_OK 0         /* done and verified */
#define MC_EXIT_RUNTIME 1    /* I/O, network or resource error */
#define MC_EXIT_USAGE 2      /* bad command line */
#define MC_EXIT_INCOMPLETE 3 /* incomplete or damaged, state kept: resumable */
#define MC_EXIT_CANNOT_RUN 126 /* mcast-sched: COMMAND found but not runnable */
#define MC_EXIT_NOT_FOUND 127  /* mcast-sched: COMMAND not found */

#endif
