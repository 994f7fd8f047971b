/* mcast-pack: placeholder until the foundation issue lands. */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "mcast-pack: not implemented yet\n");
	return 1;
}
