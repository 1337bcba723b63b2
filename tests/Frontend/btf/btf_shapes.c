/* BTF shapes for bpfjit btf: cycles through pointers, typedef'd anonymous types, enums of every sign and
 * size, bitfields and padding, packed layouts, function pointers, qualifiers and multi-dimensional arrays.
 * Build: clang -O2 -g -target bpf -c btf_shapes.c -o btf_shapes.o
 * Expected: bpftool btf dump file btf_shapes.o format c > btf_shapes.expected.h (bpftool 7.1, libbpf 1.1, clang 14),
 * with the '__attribute__((mode(byte)))' and '(mode(word))' libbpf 1.2 and later add to the 1- and 8-byte enums. */
typedef unsigned int u32;
typedef unsigned long long u64;

struct node;
struct list { struct node *head; struct list *self; };
struct node { struct list owner; struct node *next; int (*visit)(struct node *, void *); };

typedef struct { int x; int y; } point_t;
typedef union { u32 word; unsigned char bytes[4]; } word_t;

enum color { RED, GREEN = 5, BLUE = -1 };
enum flags : unsigned long long { BIG = 0xffffffff00000000ULL, SMALL = 1 };
enum tiny : unsigned char { TINY_A = 1, TINY_B = 200 };
enum { ANON_A = 7 } anon_var;

struct bits {
	unsigned a: 3;
	unsigned b: 5;
	unsigned long long c: 40;
	char d;
	long e;
	short f;
};

struct __attribute__((packed)) packed {
	char c;
	int i;
	short s;
};

struct __attribute__((aligned(16))) aligned { int x; };

typedef int (*handler_t)(const char *name, volatile u64 *counter, ...);
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
	const volatile int cv;
	int matrix[2][3];
	char *strings[4];
	int (*rows)[3];
	struct { int inner; union { int u1; long u2; }; } anon;
};

struct all g_all;
int g_unused_fn(struct all *a) { return a->p.x; }

char _license[] __attribute__((section("license"), used)) = "GPL";
