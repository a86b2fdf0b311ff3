extern int agent__placeholder; int agent__placeholder;
