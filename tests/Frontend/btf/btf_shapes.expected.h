#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

struct node;

struct list {
	struct node *head;
	struct list *self;
};

struct node {
	struct list owner;
	struct node *next;
	int (*visit)(struct node *, void *);
};

typedef struct {
	int x;
	int y;
} point_t;

typedef unsigned int u32;

typedef union {
	u32 word;
	unsigned char bytes[4];
} word_t;

enum color {
	RED = 0,
	GREEN = 5,
	BLUE = 4294967295,
};

enum flags {
	BIG = 0,
	SMALL = 1,
} __attribute__((mode(word)));

enum tiny {
	TINY_A = 1,
	TINY_B = 200,
} __attribute__((mode(byte)));

struct bits {
	unsigned int a: 3;
	unsigned int b: 5;
	unsigned long long c: 40;
	char d;
	long e;
	short f;
};

struct packed {
	char c;
	int i;
	short s;
} __attribute__((packed));

struct aligned {
	int x;
	long: 64;
};

typedef unsigned long long u64;

typedef int (*handler_t)(const char *, volatile u64 *, ...);

typedef void (*noargs_t)(void);

struct all {
	struct node n;
	point_t p;
	word_t w;
	enum color color;
	enum flags flags;
	enum tiny tiny;
	struct bits bits;
	struct packed packed;
	struct aligned aligned;
	handler_t handler;
	noargs_t noargs;
	volatile const int cv;
	int matrix[2][3];
	char *strings[4];
	int (*rows)[3];
	struct {
		int inner;
		union {
			int u1;
			long u2;
		};
	} anon;
	long: 64;
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
