/*
 * cored — command-line entry point: dispatches to one subcommand per file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist/dist.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "task 1: train a real/fake detector on one task"},
    {"adapt", cmd_adapt, "one continual step to a new task (CoReD or a baseline)"},
    {"eval", cmd_eval, "AUC and accuracy of a checkpoint on each task's test split"},
    {"protocol", cmd_protocol, "the whole continual protocol for several methods, with a report"},
    {"detect", cmd_detect, "p(fake) of the faces in photos and videos, or of face crops (JSON lines)"},
    {"faces", cmd_faces, "videos and photos -> square face crops (one folder per video); FaceForensics++ import"},
    {"forward", cmd_forward, "run a model on a tensor file (PyTorch interop and debugging)"},
    {"grad", cmd_grad, "loss and every parameter gradient for one batch (interop)"},
    {"init", cmd_init, "write freshly initialised weights of a model"},
    {"bench", cmd_bench, "training-step and inference speed of a model"},
    {"data", cmd_data, "check a data folder: images per task, split and class, and every problem"},
    {"pack", cmd_pack, "pre-resize a data folder into one memory-mapped pack file"},
    {"synth", cmd_synth, "make a continual benchmark from real photos: one task per forgery family"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "cored %s — Continual Representation using Distillation for fake-media detection\n\n"
            "usage: cored <command> [options]     (cored <command> --help for its options)\n\n"
            "commands:\n",
            CORED_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nLabels: 0 = real, 1 = fake; scores are p(fake).\n");
}

/* A closed standard descriptor gets /dev/null, so that no file cored opens can take its
   number (a checkpoint opened as descriptor 1 would receive printf's output); stdout's is
   opened read-only, so that writing a result fails and cli_exit reports it. */
static void reserve_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int got = open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY);
            if (got >= 0 && got != fd) close(got);
        }
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(commands[i].name, argv[2])) {
                    char *args[] = {argv[2], "--help", NULL};
                    return commands[i].fn(2, args);
                }
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("cored %s\n", CORED_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cored: unknown command '%s'\n\n", name);
    usage(stderr);
    return EXIT_USAGE;
}

/* The commands that run data parallel under mpirun (docs/distributed.md); the others run
   on rank 0 alone. */
static int distributed(int argc, char **argv)
{
    return argc > 1 && (!strcmp(argv[1], "train") || !strcmp(argv[1], "adapt") || !strcmp(argv[1], "protocol") ||
                        !strcmp(argv[1], "bench"));
}

int main(int argc, char **argv)
{
    reserve_std_fds();
    if (cored_dist_init(&argc, &argv)) return 1;
    int rc = 0;
    if (cored_dist_rank() == 0 || distributed(argc, argv)) rc = run(argc, argv);
    cored_dist_finalize();
    return cli_exit(rc);
}
