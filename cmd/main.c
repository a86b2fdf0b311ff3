#include <stdio.h>
int main(void)
{
    fprintf(stderr, "flotilla: under construction\n");
    return 1;
}
