/* mcast-sched: placeholder until its issue lands. */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "mcast-sched: not implemented yet\n");
	return 1;
}
