/* mcast-send: placeholder until its issue lands. */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "mcast-send: not implemented yet\n");
	return 1;
}
