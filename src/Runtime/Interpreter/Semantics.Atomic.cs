using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime;

/// <summary>The atomics (BPF_STX | BPF_ATOMIC): the read-modify-write forms, fetch forms, xchg and cmpxchg.</summary>
public static partial class Semantics
{
    /// <summary>Atomic 64-bit xor; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ulong AtomicXor64(ulong address, ulong value)
    {
        ref ulong cell = ref *(ulong*)address;
        ulong old = Volatile.Read(ref cell);
        while (true)
        {
            ulong seen = Interlocked.CompareExchange(ref cell, old ^ value, old);
            if (seen == old) return old;
            old = seen;
        }
    }

    /// <summary>Atomic 32-bit xor; returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe uint AtomicXor32(ulong address, uint value)
    {
        ref uint cell = ref *(uint*)address;
        uint old = Volatile.Read(ref cell);
        while (true)
        {
            uint seen = Interlocked.CompareExchange(ref cell, old ^ value, old);
            if (seen == old) return old;
            old = seen;
        }
    }

    /// <summary>
    /// Applies atomic operation <paramref name="op"/> (an <see cref="Frontend.AtomicOp"/> value) of
    /// 32 or 64 bits at <paramref name="address"/>. Returns the value the instruction writes back to
    /// its source register (the old value for fetch forms and xchg; for cmpxchg, the old value that
    /// goes to r0); plain forms return <paramref name="src"/> unchanged.
    /// </summary>
    public static unsafe ulong Atomic(int op, bool is64, ulong address, ulong src, ulong r0)
    {
        if (is64)
        {
            ref ulong cell = ref *(ulong*)address;
            return op switch
            {
                (int)AtomicOp.Add or (int)AtomicOp.FetchAdd => Interlocked.Add(ref cell, src) - src,
                (int)AtomicOp.Or or (int)AtomicOp.FetchOr => Interlocked.Or(ref cell, src),
                (int)AtomicOp.And or (int)AtomicOp.FetchAnd => Interlocked.And(ref cell, src),
                (int)AtomicOp.Xor or (int)AtomicOp.FetchXor => AtomicXor64(address, src),
                (int)AtomicOp.Xchg => Interlocked.Exchange(ref cell, src),
                (int)AtomicOp.CmpXchg => Interlocked.CompareExchange(ref cell, src, r0),
                _ => throw new InvalidOperationException($"invalid atomic operation 0x{op:x}"),
            };
        }
        ref uint c32 = ref *(uint*)address;
        uint s = (uint)src;
        return op switch
        {
            (int)AtomicOp.Add or (int)AtomicOp.FetchAdd => Interlocked.Add(ref c32, s) - s,
            (int)AtomicOp.Or or (int)AtomicOp.FetchOr => Interlocked.Or(ref c32, s),
            (int)AtomicOp.And or (int)AtomicOp.FetchAnd => Interlocked.And(ref c32, s),
            (int)AtomicOp.Xor or (int)AtomicOp.FetchXor => AtomicXor32(address, s),
            (int)AtomicOp.Xchg => Interlocked.Exchange(ref c32, s),
            (int)AtomicOp.CmpXchg => Interlocked.CompareExchange(ref c32, s, (uint)r0),
            _ => throw new InvalidOperationException($"invalid atomic operation 0x{op:x}"),
        };
    }
}
