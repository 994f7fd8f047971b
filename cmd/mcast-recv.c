/* mcast-recv: placeholder until its issue lands. */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "mcast-recv: not implemented yet\n");
	return 1;
}
