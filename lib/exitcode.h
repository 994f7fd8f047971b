/* Exit statuses shared by every mcast program (the contract in mcast(1) pages). */
#ifndef MC_EXITCODE_H
#define MC_EXITCODE_H

#define MC_EXIT_OK 0         /* done and verified */
#define MC_EXIT_RUNTIME 1    /* I/O, network or resource error */
#define MC_EXIT_USAGE 2      /* bad command line */
#define MC_EXIT_INCOMPLETE 3 /* incomplete or damaged, state kept: resumable */
#define MC_EXIT_CANNOT_RUN 126 /* mcast-sched: COMMAND found but not runnable */
#define MC_EXIT_NOT_FOUND 127  /* mcast-sched: COMMAND not found */

#endif
