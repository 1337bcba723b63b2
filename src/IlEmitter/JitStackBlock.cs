using System.Runtime.InteropServices;

namespace BpfJit.IlEmitter;

/// <summary>
/// The fixed-size value types a compiled program's stack block is a local of (docs/jit.md, "The generated
/// method"): the smallest one that holds the block's bytes. A plain struct local, unlike a <c>localloc</c>
/// buffer, is not an "unsafe buffer" to RyuJIT, so the method gets no GS security cookie (a store in the
/// prologue, a compare and a fail-fast call before every return) and no dynamic stack allocation: the block
/// is part of the fixed frame. Each holds a <c>long</c> so that it is 8-byte aligned, as eBPF stack
/// slots are (an atomic on the stack must not straddle a cache line). Public because the IL that declares
/// them is also saved as a standalone assembly (<c>bpfjit dump --dll</c>); programs do not use them directly.
/// </summary>
public static class JitStackBlock
{
#pragma warning disable CS0169 // the field only aligns the block
    /// <summary>8 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 8)] public struct Bytes8 { long _align; }
    /// <summary>16 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 16)] public struct Bytes16 { long _align; }
    /// <summary>32 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 32)] public struct Bytes32 { long _align; }
    /// <summary>64 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 64)] public struct Bytes64 { long _align; }
    /// <summary>128 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)] public struct Bytes128 { long _align; }
    /// <summary>256 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)] public struct Bytes256 { long _align; }
    /// <summary>512 bytes: one full eBPF frame.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 512)] public struct Bytes512 { long _align; }
    /// <summary>1,024 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 1024)] public struct Bytes1024 { long _align; }
    /// <summary>2,048 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 2048)] public struct Bytes2048 { long _align; }
    /// <summary>4,096 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 4096)] public struct Bytes4096 { long _align; }
    /// <summary>8,192 bytes: eight frames with their saved-frame records (4,416 bytes) fit.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 8192)] public struct Bytes8192 { long _align; }

#pragma warning restore CS0169

    static readonly Type[] s_types =
    [
        typeof(Bytes8), typeof(Bytes16), typeof(Bytes32), typeof(Bytes64), typeof(Bytes128), typeof(Bytes256),
        typeof(Bytes512), typeof(Bytes1024), typeof(Bytes2048), typeof(Bytes4096), typeof(Bytes8192),
    ];

    /// <summary>The largest block a type here holds.</summary>
    public const int MaxBytes = 8192;

    /// <summary>The smallest block type of at least <paramref name="bytes"/> bytes (1 to <see cref="MaxBytes"/>).</summary>
    public static Type For(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bytes, MaxBytes);
        // s_types[k] holds 8 << k bytes
        int k = 0;
        while ((8 << k) < bytes) k++;
        return s_types[k];
    }
}
