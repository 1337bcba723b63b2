using System.Diagnostics;
using System.Runtime.InteropServices;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>The tick rate jiffies64 counts at (CONFIG_HZ of common distribution kernels).</summary>
    public const ulong JiffiesHz = 250;

    /// <summary>INITIAL_JIFFIES on 64-bit kernels: jiffies start 300 s before wrapping 32 bits.</summary>
    public const ulong InitialJiffies = unchecked((uint)(0u - 300 * (uint)JiffiesHz));

    [ThreadStatic] static ulong t_prandom;

    /// <summary>bpf_ktime_get_ns: CLOCK_MONOTONIC in nanoseconds.</summary>
    public static ulong KtimeGetNs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Clock.Read(Clock.Monotonic);

    /// <summary>bpf_ktime_get_boot_ns: CLOCK_BOOTTIME in nanoseconds (includes suspend).</summary>
    public static ulong KtimeGetBootNs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Clock.Read(Clock.BootTime);

    /// <summary>bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC_COARSE in nanoseconds (tick resolution).</summary>
    public static ulong KtimeGetCoarseNs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Clock.Read(Clock.MonotonicCoarse);

    /// <summary>bpf_ktime_get_tai_ns: CLOCK_TAI in nanoseconds.</summary>
    public static ulong KtimeGetTaiNs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => Clock.Read(Clock.Tai);

    /// <summary>bpf_get_numa_node_id: this runtime presents a single NUMA node, 0.</summary>
    public static ulong GetNumaNodeId(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    /// <summary>bpf_jiffies64: <see cref="InitialJiffies"/> plus CLOCK_MONOTONIC in ticks of 1/<see cref="JiffiesHz"/> s.</summary>
    public static ulong Jiffies64(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        InitialJiffies + Clock.Read(Clock.Monotonic) / (1_000_000_000 / JiffiesHz);

    /// <summary>bpf_get_prandom_u32: a per-thread xorshift64* stream seeded from the shared generator.</summary>
    public static ulong GetPrandomU32(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        ulong x = t_prandom;
        if (x == 0) x = (ulong)Random.Shared.NextInt64() | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        t_prandom = x;
        return (x * 0x2545F4914F6CDD1D) >> 32;
    }

    /// <summary>bpf_get_smp_processor_id: the per-CPU slot of the running processor.</summary>
    public static ulong GetSmpProcessorId(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => (ulong)Cpu.Current();

    /// <summary>Linux clocks through clock_gettime (libc), with <see cref="Stopwatch"/> elsewhere.</summary>
    static class Clock
    {
        public const int Monotonic = 1, MonotonicCoarse = 6, BootTime = 7, Tai = 11;

        static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<int, long*, int> s_clockGettime = Resolve();

        static delegate* unmanaged[Cdecl, SuppressGCTransition]<int, long*, int> Resolve()
        {
            if (!OperatingSystem.IsLinux()) return null;
            foreach (var name in new[] { "libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc" })
            {
                if (NativeLibrary.TryLoad(name, out var lib) && NativeLibrary.TryGetExport(lib, "clock_gettime", out var fn))
                    return (delegate* unmanaged[Cdecl, SuppressGCTransition]<int, long*, int>)fn;
            }
            return null;
        }

        public static ulong Read(int clock)
        {
            var fn = s_clockGettime;
            if (fn != null)
            {
                long* ts = stackalloc long[2];
                if (fn(clock, ts) == 0) return (ulong)(ts[0] * 1_000_000_000 + ts[1]);
            }
            if (clock == Tai) return (ulong)((DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100) + 37_000_000_000;  // UTC + the 37 s leap offset
            long ticks = Stopwatch.GetTimestamp();
            return (ulong)(Stopwatch.Frequency == 1_000_000_000 ? ticks : (long)(ticks * (1e9 / Stopwatch.Frequency)));
        }
    }
}
