/* raft/ glue: see rg_*.h */
extern int rg__placeholder; int rg__placeholder;
