using BpfJit.Frontend;

namespace BpfJit.Runtime.Sockets;

/// <summary>The Linux errno values the socket and SK_LOOKUP runtime reports (helpers return them negated).</summary>
public static class Errno
{
    /// <summary>Argument list too long (65th link).</summary>
    public const int E2BIG = 7;
    /// <summary>Bad address (a size past the caller's buffer).</summary>
    public const int EFAULT = 14;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Object exists (a socket is already selected).</summary>
    public const int EEXIST = 17;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>No space left (ctx_size_out too small).</summary>
    public const int ENOSPC = 28;
    /// <summary>Result out of range (local_port &gt; 65535).</summary>
    public const int ERANGE = 34;
    /// <summary>No such file or entry.</summary>
    public const int ENOENT = 2;
    /// <summary>Link has been severed (update of a detached link).</summary>
    public const int ENOLINK = 67;
    /// <summary>Protocol not available (a socket option the family lacks).</summary>
    public const int ENOPROTOOPT = 92;
    /// <summary>Protocol wrong type for socket.</summary>
    public const int EPROTOTYPE = 91;
    /// <summary>Protocol not supported (socket(2) with a protocol other than TCP or UDP).</summary>
    public const int EPROTONOSUPPORT = 93;
    /// <summary>Socket type not supported.</summary>
    public const int ESOCKTNOSUPPORT = 94;
    /// <summary>Operation not supported.</summary>
    public const int EOPNOTSUPP = 95;
    /// <summary>Address family not supported by protocol.</summary>
    public const int EAFNOSUPPORT = 97;
    /// <summary>Address already in use.</summary>
    public const int EADDRINUSE = 98;
    /// <summary>Transport endpoint is already connected.</summary>
    public const int EISCONN = 106;
    /// <summary>Connection refused.</summary>
    public const int ECONNREFUSED = 111;
    /// <summary>Bad file descriptor (a closed socket).</summary>
    public const int EBADF = 9;

    /// <summary>The symbolic name of an errno value (<c>EEXIST</c>), or its number.</summary>
    public static string Name(int errno) => Math.Abs(errno) switch
    {
        E2BIG => "E2BIG", EACCES => "EACCES", EEXIST => "EEXIST", EINVAL => "EINVAL", ENOSPC => "ENOSPC",
        ERANGE => "ERANGE", ENOENT => "ENOENT", EPROTOTYPE => "EPROTOTYPE", EPROTONOSUPPORT => "EPROTONOSUPPORT", ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        EOPNOTSUPP => "EOPNOTSUPP", EAFNOSUPPORT => "EAFNOSUPPORT", EADDRINUSE => "EADDRINUSE", EISCONN => "EISCONN", EFAULT => "EFAULT", ENOLINK => "ENOLINK", ENOPROTOOPT => "ENOPROTOOPT",
        ECONNREFUSED => "ECONNREFUSED", EBADF => "EBADF",
        int n => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>A socket or hook operation the kernel would fail with an errno (bind conflict, 65th link, bad state).</summary>
public sealed class SocketErrorException : BpfException
{
    /// <summary>Creates an error carrying the positive <paramref name="errno"/>.</summary>
    public SocketErrorException(int errno, string message) : base($"{message} ({Sockets.Errno.Name(errno)})") => Errno = errno;

    /// <summary>The positive errno value.</summary>
    public int Errno { get; }
}
