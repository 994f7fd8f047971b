/*
 * Unit tests of lib/fe.c: the summary a --json run owes on every way out,
 * the signal set-up and its undoing, the common options, nearest command.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "tap.h"

static const struct mc_fe_prog prog = {.usage = "usage: t\n", .help = "help\n", .exit3 = "damaged"};

enum way { BY_EXIT, BY_FINISH, OWN_SUMMARY, NO_JSON };

/* Runs a child that starts with --json (or not), names cmd and path, leaves by way with status; its stdout. */
static int child_stdout(enum way way, int status, const char *cmd, const char *path, char *out, size_t cap)
{
	int fd[2], st;
	ssize_t n, len = 0;
	pid_t pid;

	fflush(stdout); /* the child must not write the parent's buffered lines again */
	if (pipe(fd) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		struct mc_fe_common o = {.verbosity = 0, .json = way != NO_JSON};
		struct mc_json j;
		dup2(fd[1], STDOUT_FILENO);
		close(fd[0]);
		close(fd[1]);
		mc_fe_start(&prog, "test_fe", &o);
		mc_fe_summary_about(cmd, path);
		if (way == OWN_SUMMARY) {
			mc_fe_summary(&j, "complete");
			mc_json_end(&j);
		}
		if (way == BY_FINISH)
			_exit(mc_fe_finish(status));
		exit(status);
	}
	close(fd[1]);
	while ((n = read(fd[0], out + len, cap - 1 - (size_t)len)) > 0)
		len += n;
	out[len] = '\0';
	close(fd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static volatile sig_atomic_t got, usr1;

int main(void)
{
	char out[1024];
	struct sigaction sa;
	sigset_t wait, now;
	struct mc_fe_common o = {1, 0};
	static const char *const cmds[] = {"create", "extract", "info", "keygen", "list", "verify"};

	ok(child_stdout(BY_EXIT, MC_EXIT_USAGE, NULL, "p.mcpkg", out, sizeof out) == MC_EXIT_USAGE &&
	   strcmp(out, "{\"event\":\"summary\",\"v\":1,\"result\":\"error\",\"path\":\"p.mcpkg\",\"exit\":2}\n") == 0,
	   "exit(2) after --json: the owed summary");
	ok(child_stdout(BY_FINISH, MC_EXIT_INCOMPLETE, "verify", "p.mcpkg", out, sizeof out) == MC_EXIT_INCOMPLETE &&
	   strcmp(out, "{\"event\":\"summary\",\"v\":1,\"result\":\"damaged\",\"command\":\"verify\","
		       "\"path\":\"p.mcpkg\",\"exit\":3}\n") == 0,
	   "mc_fe_finish(3): the program's word for 3, its command");
	ok(child_stdout(BY_EXIT, 127, NULL, NULL, out, sizeof out) == 127 &&
	   strcmp(out, "{\"event\":\"summary\",\"v\":1,\"result\":\"error\",\"path\":null,\"exit\":127}\n") == 0,
	   "no path: null");
	ok(child_stdout(BY_FINISH, 0, NULL, "p", out, sizeof out) == 0 && strstr(out, "\"result\":\"complete\"") &&
	   strstr(out, "\"exit\":0"), "exit 0 without a summary: complete");
	ok(child_stdout(OWN_SUMMARY, MC_EXIT_RUNTIME, NULL, "p", out, sizeof out) == MC_EXIT_RUNTIME &&
	   strcmp(out, "{\"event\":\"summary\",\"v\":1,\"result\":\"complete\"}\n") == 0,
	   "a run that wrote its own summary gets no second one");
	ok(child_stdout(NO_JSON, MC_EXIT_USAGE, NULL, "p", out, sizeof out) == MC_EXIT_USAGE && out[0] == '\0',
	   "without --json nothing on stdout");

	ok(mc_fe_common_option(&prog, 'q', &o) == 1 && o.verbosity == 0, "-q");
	ok(mc_fe_common_option(&prog, 'v', &o) == 1 && o.verbosity == 2, "-v after -q: verbose");
	ok(mc_fe_common_option(&prog, MC_FE_OPT_JSON, &o) == 1 && o.json == 1, "--json");
	ok(mc_fe_common_option(&prog, 'g', &o) == 0, "-g is not a common option");

	signal(SIGHUP, SIG_IGN);
	mc_fe_signals_ppoll(&got, &usr1, &wait);
	sigprocmask(SIG_SETMASK, NULL, &now);
	ok(sigismember(&now, SIGTERM) && sigismember(&now, SIGUSR1) && !sigismember(&wait, SIGTERM) &&
	   !sigismember(&wait, SIGUSR1), "ppoll: signals blocked outside the wait, open inside it");
	sigaction(SIGPIPE, NULL, &sa);
	ok(sa.sa_handler == SIG_IGN, "SIGPIPE ignored");
	raise(SIGUSR1);
	raise(SIGTERM);
	ok(got == 0 && usr1 == 0, "blocked: nothing delivered yet");
	sigsuspend(&wait);
	ok(got == SIGTERM || usr1 == 1, "delivered inside the wait");
	sigprocmask(SIG_SETMASK, &wait, NULL);
	ok(got == SIGTERM && usr1 == 1, "SIGTERM sets the flag, SIGUSR1 its own");
	mc_fe_signals_restore();
	sigaction(SIGHUP, NULL, &sa);
	ok(sa.sa_handler == SIG_IGN, "restored: SIGHUP ignored as it was before");
	sigaction(SIGPIPE, NULL, &sa);
	ok(sa.sa_handler == SIG_DFL, "restored: SIGPIPE default for the command");
	sigprocmask(SIG_SETMASK, NULL, &now);
	ok(!sigismember(&now, SIGTERM), "restored: the mask");

	ok(mc_fe_nearest("verfy", cmds, 6) && strcmp(mc_fe_nearest("verfy", cmds, 6), "verify") == 0, "verfy: verify");
	ok(mc_fe_nearest("ext", cmds, 6) && strcmp(mc_fe_nearest("ext", cmds, 6), "extract") == 0, "prefix");
	ok(mc_fe_nearest("frobnicate", cmds, 6) == NULL, "nothing near");
	return tap_done();
}
