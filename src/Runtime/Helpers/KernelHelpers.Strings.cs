using System.Text;
using BpfJit.Runtime.Maps;

namespace BpfJit.Runtime;

public static unsafe partial class KernelHelpers
{
    /// <summary>bpf_strtol.</summary>
    public const int StrtolId = 105;
    /// <summary>bpf_strtoul.</summary>
    public const int StrtoulId = 106;
    /// <summary>bpf_snprintf.</summary>
    public const int SnprintfId = 165;
    /// <summary>bpf_strncmp.</summary>
    public const int StrncmpId = 182;

    /// <summary>BPF_STRTOX_BASE_MASK: the low five bits of the flags give the base (0, 8, 10 or 16).</summary>
    const ulong StrtoxBaseMask = 0x1f;

    /// <summary>
    /// bpf_strtol(buf, buf_len, flags, res): the kernel's parsing (kernel/bpf/helpers.c): leading white space,
    /// one '-', the base from the flags or, for 0, from a "0x" or "0" prefix, as many digits as follow (within
    /// the first 63 characters after the sign). Returns the number of characters consumed and stores the value,
    /// or -EINVAL (no digits, a bad base or flag) / -ERANGE (out of range of s64) with *res = 0.
    /// </summary>
    public static ulong Strtol(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        long* res = (long*)r4;
        *res = 0;
        int n = ParseUnsigned((byte*)r1, r2, r3, out ulong value, out bool negative);
        if (n < 0) return Err(-n);
        if (negative)
        {
            // -value must be negative or zero: 2^63 is the largest magnitude.
            if ((long)(0 - value) > 0) return Err(Errno.ERANGE);
            *res = (long)(0 - value);
        }
        else
        {
            if ((long)value < 0) return Err(Errno.ERANGE);
            *res = (long)value;
        }
        return (ulong)n;
    }

    /// <summary>
    /// bpf_strtoul(buf, buf_len, flags, res): as <see cref="Strtol"/> for an unsigned value; a leading '-' is
    /// -EINVAL, a value past u64 -ERANGE, both with *res = 0.
    /// </summary>
    public static ulong Strtoul(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        ulong* res = (ulong*)r4;
        *res = 0;
        int n = ParseUnsigned((byte*)r1, r2, r3, out ulong value, out bool negative);
        if (n < 0) return Err(-n);
        if (negative) return Err(Errno.EINVAL);
        *res = value;
        return (ulong)n;
    }

    /// <summary>The kernel's __bpf_strtoull: characters consumed (white space and sign included), or a negated errno.</summary>
    static int ParseUnsigned(byte* buf, ulong length, ulong flags, out ulong value, out bool negative)
    {
        value = 0;
        negative = false;
        uint numberBase = (uint)(flags & StrtoxBaseMask);
        if (buf == null || length == 0) return -Errno.EINVAL;
        if (numberBase is not (0 or 8 or 10 or 16)) return -Errno.EINVAL;
        if ((flags & ~StrtoxBaseMask) != 0) return -Errno.EINVAL;
        ulong at = 0;
        while (at < length && IsSpace(buf[at])) at++;
        negative = at < length && buf[at] == '-';
        if (negative) at++;
        if (at == length) return -Errno.EINVAL;
        // The kernel copies at most 63 characters into a NUL-terminated buffer before parsing.
        int copied = (int)Math.Min(length - at, 63);
        byte* s = stackalloc byte[64];
        new ReadOnlySpan<byte>(buf + at, copied).CopyTo(new Span<byte>(s, 64));
        s[copied] = 0;
        int prefix = 0;
        if (numberBase == 0)
        {
            if (s[0] == '0') numberBase = Lower(s[1]) == 'x' && IsHexDigit(s[2]) ? 16u : 8u;
            else numberBase = 10;
        }
        if (numberBase == 16 && s[0] == '0' && Lower(s[1]) == 'x') prefix = 2;
        // _parse_integer: digits until the first that is not one in this base; overflow is remembered, not fatal.
        bool overflow = false;
        int digits = 0;
        for (byte* p = s + prefix; ; p++, digits++)
        {
            uint c = *p, lc = Lower(*p), digit;
            if (c >= '0' && c <= '9') digit = c - '0';
            else if (lc >= 'a' && lc <= 'f') digit = lc - 'a' + 10;
            else break;
            if (digit >= numberBase) break;
            if ((value & (~0UL << 60)) != 0 && value > (ulong.MaxValue - digit) / numberBase) overflow = true;
            value = unchecked(value * numberBase + digit);
        }
        if (overflow) return -Errno.ERANGE;
        if (digits == 0) return -Errno.EINVAL;
        return (int)at + prefix + digits;
    }

    static uint Lower(byte c) => (uint)c | 0x20;

    static bool IsHexDigit(byte c) => c is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';

    /// <summary>The kernel's isspace (lib/ctype.c, Latin-1): \t \n \v \f \r, space and the no-break space 0xa0.</summary>
    static bool IsSpace(byte c) => c is (>= 9 and <= 13) or 32 or 0xa0;

    /// <summary>
    /// bpf_strncmp(s1, s1_sz, s2): the kernel's strncmp(s1, s2, s1_sz) (lib/string.c): compares as unsigned bytes up to
    /// s1_sz bytes or the first NUL; -1, 0 or 1. The verifier guarantees s1_sz readable bytes at s1 and a NUL-terminated
    /// constant string at s2 (ARG_PTR_TO_CONST_STR); the comparison stops at s2's NUL at the latest, as the kernel's.
    /// </summary>
    public static ulong Strncmp(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        byte* s1 = (byte*)r1, s2 = (byte*)r3;
        for (ulong i = 0; i < r2; i++)
        {
            byte c1 = s1[i], c2 = s2[i];
            if (c1 != c2) return c1 < c2 ? ulong.MaxValue : 1;
            if (c1 == 0) break;
        }
        return 0;
    }

    /// <summary>
    /// bpf_snprintf(str, str_size, fmt, data, data_len): formats the constant string fmt (the verifier checked it as
    /// bpf_bprintf_prepare does, with data_len / 8 arguments) with the u64 array data, as bstr_printf into str: at most
    /// str_size - 1 bytes and a NUL. Returns the length of the whole text plus one (the size a buffer needs), or
    /// -EINVAL for a data_len that is not a multiple of 8, above 12 arguments or without data, or a format that
    /// asks for more arguments than it is given. The kernel's -EBUSY (its per-CPU format buffers nested more than
    /// three deep, by an interrupt) cannot happen here: nothing interrupts a program on its thread.
    /// </summary>
    public static ulong Snprintf(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r5 % 8 != 0 || r5 > TracePrintkFormat.MaxSnprintfArgs * 8 || (r5 != 0 && r4 == 0)) return Err(Errno.EINVAL);
        byte* fmt = (byte*)r3;
        // Byte by byte: a vectorised search could read past the string into an unmapped page.
        ulong fmtLength = 0;
        while (fmt[fmtLength] != 0) fmtLength++;
        var args = new ReadOnlySpan<ulong>((ulong*)r4, (int)(r5 / 8));
        int length = TracePrintkFormat.FormatAll(fmt, fmtLength + 1, args, args.Length, out string text);
        if (length < 0) return Err(-length);
        if (r1 != 0 && r2 > 0)
        {
            var str = new Span<byte>((byte*)r1, (int)r2);
            int n = Math.Min(text.Length, str.Length - 1);
            Encoding.Latin1.GetBytes(text.AsSpan(0, n), str);
            str[n] = 0;
        }
        return (ulong)length + 1;
    }
}
