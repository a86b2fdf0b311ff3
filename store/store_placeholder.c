extern int store__placeholder; int store__placeholder;
