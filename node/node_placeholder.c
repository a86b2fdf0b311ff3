extern int node__placeholder; int node__placeholder;
