using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BpfJit.Runtime.Maps;

/// <summary>Native allocation for map memory: zeroed, aligned, freed directly or through <see cref="MapEpoch"/>.</summary>
internal static unsafe class Native
{
    /// <summary>Zeroed memory aligned to <paramref name="alignment"/> (a power of two, at least 8).</summary>
    public static byte* Alloc(nuint size, nuint alignment = 8)
    {
        byte* p = (byte*)NativeMemory.AlignedAlloc(size == 0 ? 1 : size, alignment);
        NativeMemory.Clear(p, size);
        Checked.NativeAllocations.Allocated();
        return p;
    }

    /// <summary>Blocks from this size up come from <see cref="AllocLazy"/> as untouched anonymous pages.</summary>
    public const int LazyThreshold = 64 * 1024;

    /// <summary>
    /// Zeroed, page-aligned memory whose pages are not committed until first written: anonymous private pages
    /// from mmap on Linux (read as zeros, backed on first write), so a large ARRAY costs address space, not memory,
    /// until a program or userspace writes its elements. Elsewhere, or below <see cref="LazyThreshold"/>,
    /// <see cref="Alloc"/> with <paramref name="alignment"/> (at most a page). Free with <see cref="FreeLazy"/> and the same size. Returns null when the address
    /// space cannot be reserved.
    /// </summary>
    public static byte* AllocLazy(nuint size, nuint alignment = 64)
    {
        if (size < LazyThreshold || !OperatingSystem.IsLinux()) return Alloc(size, alignment);
        void* p = mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        if (p == (void*)-1) return null;
        Checked.NativeAllocations.Allocated();
        return (byte*)p;
    }

    /// <summary>Frees memory from <see cref="AllocLazy"/> of <paramref name="size"/> bytes.</summary>
    public static void FreeLazy(void* p, nuint size)
    {
        if (size < LazyThreshold || !OperatingSystem.IsLinux())
        {
            Free(p);
            return;
        }
        munmap(p, size);
        Checked.NativeAllocations.Freed();
    }

    const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymous = 0x20, MapNoReserve = 0x4000;

    [DllImport("libc", SetLastError = true)]
    static extern void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    static extern int munmap(void* addr, nuint length);

    /// <summary>Frees memory from <see cref="Alloc"/> at once (no reader can hold it).</summary>
    public static void Free(void* p)
    {
        NativeMemory.AlignedFree(p);
        Checked.NativeAllocations.Freed();
    }

    /// <summary>Rounds up to a multiple of 8, as the kernel does for per-CPU values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Round8(int n) => (n + 7) & ~7;

    /// <summary>Byte-wise equality of two native blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Equal(byte* a, byte* b, int length) =>
        new ReadOnlySpan<byte>(a, length).SequenceEqual(new ReadOnlySpan<byte>(b, length));

    /// <summary>Copies <paramref name="length"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(byte* from, byte* to, int length) => Buffer.MemoryCopy(from, to, length, length);
}
