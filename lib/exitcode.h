/* Exit statuses shared by every mcast program (the contract in mcast(1) pages), and lib's one error convention. */
#ifndef MC_EXITCODE_H
#define MC_EXITCODE_H

/*
 * Errors in lib: the one convention (issue 14).
 *
 *   A function that can fail returns 0 (or a count, or 1 for "yes") on
 *   success and a negative errno code on failure, and leaves no meaning in
 *   errno: callers look at the code, never at errno after the call. The
 *   codes that carry meaning:
 *     -EBADMSG  damaged or truncated data (a package, a chunk, a span):
 *               incomplete but resumable, exit MC_EXIT_INCOMPLETE
 *     -EINVAL   not ours or not suitable (not an mcast package, a target
 *               that cannot take the image): a usage error where cmd/ says so
 *     -EACCES   encrypted, and no key that opens it
 *     -ENOMEM   out of memory: said as such (mc_strerror), never as an I/O error
 *     -EPROTO   a payload libarchive cannot decode
 *     else      the -errno of the system call that failed (-EIO, -ENOSPC ...)
 *   A function that takes (char *err, size_t errlen) writes the reason
 *   there, naming the file, device or address at fault ("PKG.part: No space
 *   left on device"); mc_net_group alone gives the bare reason, as its
 *   caller names the option or variable that gave the group. lib never
 *   prints and never exits; cmd/ says the reason
 *   (mc_err; mc_err_sys where errno is the reason of a call it made itself)
 *   and picks the exit status below from the code.
 *
 *   Callbacks and ops tables (lib/sink.h) follow the same rule. A pure core
 *   (sender, receiver) reports failures of its callbacks as events.
 *
 * Who follows it: pkg (mc_pkg_*, mc_pwrite_all, mc_pkg_write_head,
 * mc_manifest_parse, mc_manifest_encode*, mc_manifest_unlock*,
 * mc_chunk_check_init), pkgread (list, extract, verify), resume, sink_pkg,
 * sink_target, mc_image_decode, state (mc_state_*), workq (its callbacks
 * too), net (setup, send and receive), txloop (mc_txloop_open, _run and
 * its io ops), source's setup (mc_source_global_init, _new, _check_spec),
 * repair (mc_repair_run), disk, fsmap (mc_extents_add, mc_fsmap; its
 * device callbacks for libntfs-3g and libtsk answer -1 and errno, as those
 * libraries ask), pkgcreate (mc_pkg_create, mc_pkg_rewrap), image
 * (mc_image_create too), crypto (keys, key files, trust sets, digests,
 * AEAD, boxes), the mc_manifest sign and seal calls (mc_manifest_want_sign,
 * _sign, _want_encrypt, _seal_to, mc_chunk_seal, mc_chunk_open), target
 * (mc_target_*; mc_target_open gives the target in *out), tstate
 * (mc_tstate_*), signatures (mc_sig_check, mc_manifest_trust: enum
 * mc_sig_result names its codes, -ENOKEY unsigned, -EKEYREJECTED by a key
 * not trusted, -EBADMSG tampered).
 *
 * Answers, not errors (no errno, no code to pick an exit from): parsers
 * that answer yes or no (mc_opt_*, mc_id_parse, mc_comp_parse,
 * mc_wire_decode, mc_multipart_*, mc_content_range_parse) return -1 for
 * "no"; mc_source_open and mc_source_fetch return a class, MC_SOURCE_*
 * (ask again later, give the source up, stopped, stalled: leave it for
 * now), the answer repair's retry policy needs whatever the cause was (an
 * HTTP status, a TLS failure, a short body, an errno), ordered by how
 * serious it is, with the reason in err. The session drivers' constructors
 * (mc_txloop_new, mc_rxloop_new) return the driver or NULL with the reason
 * in err: what fails there (memory, a package that cannot be cut into
 * coding blocks) is a runtime error whatever the cause, and the opening
 * that follows (mc_txloop_open, mc_rxloop_open) returns the code.
 */

/*
 * The reason of a code (negative errno, as lib returns; a positive errno
 * is read the same): "out of memory" for ENOMEM (the C library's "Cannot
 * allocate memory" reads like a device fault), strerror's text otherwise.
 * Every reason lib or cmd/ writes for a code goes through it, so no memory
 * is said one way everywhere. The ENOMEM reason is one string, the same
 * pointer each time, so code that passes a bare reason up can tell it
 * from the others (why == mc_strerror(-ENOMEM)). Declared here rather
 * than in log.h: it belongs to the convention above, and lib never prints.
 */
const char *mc_strerror(int code);

#define MC_EXIT_OK 0         /* done and verified */
#define MC_EXIT_RUNTIME 1    /* I/O, network or resource error */
#define MC_EXIT_USAGE 2      /* bad command line */
#define MC_EXIT_INCOMPLETE 3 /* incomplete or damaged, state kept: resumable */
#define MC_EXIT_CANNOT_RUN 126 /* mcast-sched: COMMAND found but not runnable */
#define MC_EXIT_NOT_FOUND 127  /* mcast-sched: COMMAND not found */

#endif
