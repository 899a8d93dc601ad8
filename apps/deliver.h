/* cmprouter deliver (pipe delivery of one mail from an MTA). */
#ifndef CMPR_APPS_DELIVER_H
#define CMPR_APPS_DELIVER_H

/* argv[0] is "deliver"; conf may be NULL (then -c must follow the command) */
int cmpr_cmd_deliver(const char *conf, int argc, char **argv);

#endif
