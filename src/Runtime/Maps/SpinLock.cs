using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// struct bpf_spin_lock: a 4-byte word inside a map value, 0 when free and 1 when held. Programs take it
/// with bpf_spin_lock/bpf_spin_unlock; userspace takes it for BPF_F_LOCK lookups and updates.
/// </summary>
public static unsafe class BpfSpinLock
{
    /// <summary>Size of the lock word.</summary>
    public const int Size = 4;

    /// <summary>Takes the lock at <paramref name="address"/>, spinning (then yielding) while another holder has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lock(void* address)
    {
        ref int word = ref Unsafe.AsRef<int>(address);
        if (Interlocked.CompareExchange(ref word, 1, 0) != 0) Contended(ref word);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Contended(ref int word)
    {
        var spin = new SpinWait();
        do spin.SpinOnce();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0);
    }

    /// <summary>Releases the lock at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unlock(void* address) => Volatile.Write(ref Unsafe.AsRef<int>(address), 0);

    /// <summary>
    /// Copies a map value like the kernel's copy_map_value(_locked): every byte except the lock word,
    /// under the destination's (or source's) lock when <paramref name="locked"/> is set.
    /// </summary>
    internal static void CopyValue(byte* from, byte* to, int size, int lockOffset, bool locked, bool lockDestination)
    {
        if (lockOffset < 0)
        {
            Native.Copy(from, to, size);
            return;
        }
        byte* lockWord = (lockDestination ? to : from) + lockOffset;
        if (locked) Lock(lockWord);
        Native.Copy(from, to, lockOffset);
        int rest = lockOffset + Size;
        Native.Copy(from + rest, to + rest, size - rest);
        if (locked) Unlock(lockWord);
    }
}
