extern int aproto__placeholder; int aproto__placeholder;
