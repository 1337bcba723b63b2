using System.Globalization;
using System.Text;

namespace BpfJit.Runtime;

/// <summary>
/// Where bpf_trace_printk writes: the host sets <see cref="Sink"/> (the kernel's trace_pipe). Each call
/// delivers one formatted message; with no sink the message is formatted and dropped.
/// </summary>
public static class TracePipe
{
    static Action<string>? s_sink;

    /// <summary>The receiver of bpf_trace_printk messages (thread-safe to replace at any time).</summary>
    public static Action<string>? Sink
    {
        get => Volatile.Read(ref s_sink);
        set => Volatile.Write(ref s_sink, value);
    }
}

/// <summary>
/// The format language of bpf_trace_printk, validated like the kernel's bpf_bprintf_prepare: at most three
/// conversions; <c>%d %i %u %x %X</c> with optional <c>l</c>/<c>ll</c> (32-bit without), <c>%c</c>, <c>%s</c>,
/// <c>%p</c>/<c>%px</c>/<c>%pK</c> (printed raw as 16 hex digits: no pointer hashing here), <c>%pks</c>/<c>%pus</c>,
/// <c>%pI4 %pi4 %pI6 %pi6</c>, <c>%%</c>; flags <c>0 + - space</c> and a width; only printable ASCII and
/// whitespace. Anything else is -EINVAL, as is a format without a NUL inside its size.
/// </summary>
public static unsafe class TracePrintkFormat
{
    /// <summary>MAX_TRACE_PRINTK_VARARGS.</summary>
    public const int MaxArgs = 3;

    /// <summary>MAX_BPRINTF_BUF: the formatted message is cut to this size minus the NUL.</summary>
    public const int MaxOutput = 1024;

    /// <summary>MAX_BPRINTF_VARARGS: bpf_snprintf's largest argument count.</summary>
    public const int MaxSnprintfArgs = 12;

    /// <summary>Formats; returns the formatted length, or a negated errno (and no text).</summary>
    public static int Format(byte* fmt, ulong fmtSize, ReadOnlySpan<ulong> args, out string text)
    {
        int result = FormatAll(fmt, fmtSize, args, MaxArgs, out string all);
        text = all.Length >= MaxOutput ? all[..(MaxOutput - 1)] : all;
        return result;
    }

    /// <summary>
    /// bpf_bprintf_prepare's check of a format the verifier knows (bpf_snprintf's): true when <paramref name="fmt"/>
    /// (its bytes up to, without, the NUL) is valid with <paramref name="argCount"/> arguments.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<byte> fmt, int argCount)
    {
        var z = new byte[fmt.Length + 1];
        fmt.CopyTo(z);
        // Zero arguments: %s and %pI4 of NULL read nothing.
        var args = new ulong[Math.Max(0, argCount)];
        fixed (byte* p = z) return FormatAll(p, (ulong)z.Length, args, args.Length, out _) >= 0;
    }

    /// <summary>
    /// Formats with at most <paramref name="maxArgs"/> conversions; returns the length of the whole text (not cut to
    /// <see cref="MaxOutput"/>), or a negated errno (and no text).
    /// </summary>
    public static int FormatAll(byte* fmt, ulong fmtSize, ReadOnlySpan<ulong> args, int maxArgs, out string text)
    {
        text = "";
        if (fmt == null || fmtSize == 0) return -Runtime.Errno.EINVAL;
        int length = new ReadOnlySpan<byte>(fmt, (int)Math.Min(fmtSize, int.MaxValue)).IndexOf((byte)0);
        if (length < 0) return -Runtime.Errno.EINVAL;
        var f = new ReadOnlySpan<byte>(fmt, length + 1);    // keeps the NUL so f[i + 1] is always readable
        var sb = new StringBuilder();
        int arg = 0;
        for (int i = 0; i < length; i++)
        {
            byte c = f[i];
            if (c > 0x7f || (c < 0x20 && !IsSpace(c)) || c == 0x7f) return -Runtime.Errno.EINVAL;
            if (c != '%')
            {
                sb.Append((char)c);
                continue;
            }
            if (f[i + 1] == '%')
            {
                sb.Append('%');
                i++;
                continue;
            }
            if (arg >= Math.Min(args.Length, maxArgs)) return -Runtime.Errno.EINVAL;
            ulong value = args[arg++];
            i++;
            bool left = false, zero = false, plus = false, space = false;
            for (; ; i++)
            {
                if (f[i] == '-') left = true;
                else if (f[i] == '0') zero = true;
                else if (f[i] == '+') plus = true;
                else if (f[i] == ' ') space = true;
                else break;
            }
            int width = 0;
            if (f[i] >= '1' && f[i] <= '9')
            {
                while (f[i] >= '0' && f[i] <= '9') width = Math.Min(width * 10 + (f[i++] - '0'), MaxOutput);
            }
            string piece;
            bool numeric = false;
            switch ((char)f[i])
            {
                case 'p':
                    {
                        byte n1 = f[i + 1], n2 = n1 == 0 ? (byte)0 : f[i + 2];
                        if ((n1 == 'k' || n1 == 'u') && n2 == 's')
                        {
                            piece = ReadString(value);
                            i += 2;
                        }
                        else if (n1 == 0 || IsSpace(n1) || IsPunct(n1) || n1 is (byte)'K' or (byte)'x' or (byte)'s' or (byte)'S' or (byte)'B')
                        {
                            piece = value.ToString("x16", CultureInfo.InvariantCulture);
                            if (n1 is (byte)'K' or (byte)'x' or (byte)'s' or (byte)'S' or (byte)'B') i++;
                        }
                        else if ((n1 == 'i' || n1 == 'I') && (n2 == '4' || n2 == '6'))
                        {
                            piece = FormatIp(value, n1 == 'I', n2 == '6');
                            i += 2;
                        }
                        else return -Runtime.Errno.EINVAL;
                        break;
                    }
                case 's':
                    piece = ReadString(value);
                    break;
                case 'c':
                    piece = ((char)(byte)value).ToString();
                    break;
                default:
                    {
                        bool wide = false;
                        if (f[i] == 'l') { wide = true; i++; }
                        if (f[i] == 'l') i++;
                        char conv = (char)f[i];
                        if (conv is not ('d' or 'i' or 'u' or 'x' or 'X')) return -Runtime.Errno.EINVAL;
                        ulong v = wide ? value : (uint)value;
                        numeric = true;
                        piece = conv switch
                        {
                            'd' or 'i' => wide ? ((long)v).ToString(CultureInfo.InvariantCulture) : ((int)(uint)v).ToString(CultureInfo.InvariantCulture),
                            'u' => v.ToString(CultureInfo.InvariantCulture),
                            'x' => v.ToString("x", CultureInfo.InvariantCulture),
                            _ => v.ToString("X", CultureInfo.InvariantCulture),
                        };
                        if (conv is 'd' or 'i' && piece[0] != '-' && (plus || space)) piece = (plus ? "+" : " ") + piece;
                        break;
                    }
            }
            Pad(sb, piece, width, left, zero && numeric && !left);
        }
        text = sb.ToString();
        return text.Length;
    }

    static void Pad(StringBuilder sb, string piece, int width, bool left, bool zero)
    {
        int fill = width - piece.Length;
        if (fill <= 0) { sb.Append(piece); return; }
        if (left) { sb.Append(piece).Append(' ', fill); return; }
        if (zero && piece.Length > 0 && piece[0] is '-' or '+' or ' ')
        {
            sb.Append(piece[0]).Append('0', fill).Append(piece, 1, piece.Length - 1);
            return;
        }
        sb.Append(zero ? '0' : ' ', fill).Append(piece);
    }

    static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\v' or (byte)'\f' or (byte)'\r';

    static bool IsPunct(byte c) => c is > 0x20 and < 0x7f && !char.IsAsciiLetterOrDigit((char)c);

    // The values behind %s and %pI4 are whatever the program put in r3-r5, which no verifier checks. The kernel
    // reads them with strncpy_from_kernel_nofault and copy_from_kernel_nofault (bpf_bprintf_prepare): a string
    // it cannot read prints as nothing, an address it cannot read prints as all zeros. Here "can read" means
    // inside a region the program may touch (Checked.MemoryRegions): its stack, the context, a map value, a
    // socket, a record. A string stops at its region's end.

    static string ReadString(ulong address)
    {
        if (address == 0 || !Checked.MemoryRegions.TryFind(address, 1, out ulong start, out int length)) return "";
        // Byte by byte: a vectorised search could read past the string into an unmapped page.
        byte* s = (byte*)address;
        int limit = (int)Math.Min(MaxOutput - 1, start + (ulong)length - address);
        int end = 0;
        while (end < limit && s[end] != 0) end++;
        return Encoding.Latin1.GetString(s, end);
    }

    static string FormatIp(ulong address, bool canonical, bool v6)
    {
        byte* zeros = stackalloc byte[16];
        new Span<byte>(zeros, 16).Clear();
        byte* p = address != 0 && Checked.MemoryRegions.Contains(address, v6 ? 16 : 4) ? (byte*)address : zeros;
        if (!v6)
        {
            return canonical
                ? $"{p[0]}.{p[1]}.{p[2]}.{p[3]}"
                : $"{p[0]:D3}.{p[1]:D3}.{p[2]:D3}.{p[3]:D3}";
        }
        var sb = new StringBuilder();
        for (int g = 0; g < 8; g++)
        {
            if (canonical && g > 0) sb.Append(':');
            sb.Append(p[2 * g].ToString("x2", CultureInfo.InvariantCulture)).Append(p[2 * g + 1].ToString("x2", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}

public static unsafe partial class KernelHelpers
{
    /// <summary>
    /// bpf_trace_printk(fmt, fmt_size, a1, a2, a3): formats (see <see cref="TracePrintkFormat"/>) and writes
    /// the message to <see cref="TracePipe.Sink"/>; returns the message length or -EINVAL.
    /// </summary>
    public static ulong TracePrintk(ulong fmt, ulong fmtSize, ulong a1, ulong a2, ulong a3)
    {
        ReadOnlySpan<ulong> args = [a1, a2, a3];
        int result = TracePrintkFormat.Format((byte*)fmt, fmtSize, args, out string text);
        if (result >= 0) TracePipe.Sink?.Invoke(text);
        return (ulong)(long)result;
    }

    /// <summary>bpf_trace_vprintk.</summary>
    public const int TraceVprintkId = 177;

    /// <summary>
    /// bpf_trace_vprintk(fmt, fmt_size, data, data_len): bpf_trace_printk with its arguments in a u64 array, up to
    /// MAX_BPRINTF_VARARGS (12): -EINVAL for a data_len that is not a multiple of 8, above 96 or without data, or a
    /// format <see cref="TracePrintkFormat"/> refuses with that many arguments; else the message goes to
    /// <see cref="TracePipe.Sink"/> and the result is its length.
    /// </summary>
    public static ulong TraceVprintk(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r4 % 8 != 0 || r4 > TracePrintkFormat.MaxSnprintfArgs * 8 || (r4 != 0 && r3 == 0)) return Err(Errno.EINVAL);
        var args = new ReadOnlySpan<ulong>((ulong*)r3, (int)(r4 / 8));
        int result = TracePrintkFormat.FormatAll((byte*)r1, r2, args, args.Length, out string text);
        if (result < 0) return (ulong)(long)result;
        TracePipe.Sink?.Invoke(text.Length >= TracePrintkFormat.MaxOutput ? text[..(TracePrintkFormat.MaxOutput - 1)] : text);
        return (ulong)result;
    }
}
