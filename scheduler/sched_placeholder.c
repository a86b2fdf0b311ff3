extern int sched__placeholder; int sched__placeholder;
