/*
 * version.h — the program version written into every file the engine saves (analysis, plan,
 * session), so a reader can say which build made a file.
 */
#ifndef CCE_VERSION_H
#define CCE_VERSION_H

#define CCE_VERSION "0.4.0"

#endif
