/* Network and session defaults: the one place the programs and man pages take them from. */
#ifndef MC_DEFAULTS_H
#define MC_DEFAULTS_H

#define MC_DEFAULT_GROUP4 "239.255.77.77"
#define MC_DEFAULT_PORT 7077 /* data on PORT, feedback on PORT+1 */
#define MC_DEFAULT_TTL 1
#define MC_DEFAULT_RATE 500000000ULL  /* bits per second */
#define MC_DEFAULT_MTU 1500
#define MC_DEFAULT_LINGER_MS 2000
#define MC_DEFAULT_CHUNK (1024 * 1024)
#define MC_DEFAULT_PEER_TIMEOUT_MS 5000 /* silent receiver no longer waited for */
#define MC_DEFAULT_MAX_PASSES 12        /* slow-receiver policy, see mcast-send(1) */
#define MC_DEFAULT_RECV_TIMEOUT_MS 0    /* 0: wait for ever for a session to appear */
#define MC_DEFAULT_RECV_SILENCE_MS 10000 /* without --timeout: a sender silent this long mid-session is gone */

#endif
