namespace BpfJit.Runtime;

/// <summary>
/// The Linux errno values the runtime reports, with the kernel's numbers: helpers and map operations return them
/// negated, as the kernel does (<c>-Errno.ENOENT</c>); socket and hook errors carry them positive
/// (<see cref="Sockets.SocketErrorException.Errno"/>).
/// </summary>
public static class Errno
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such file or entry.</summary>
    public const int ENOENT = 2;
    /// <summary>Argument list (or size) too big; also the 65th link.</summary>
    public const int E2BIG = 7;
    /// <summary>Bad file descriptor (a closed socket).</summary>
    public const int EBADF = 9;
    /// <summary>Try again (ring buffer full).</summary>
    public const int EAGAIN = 11;
    /// <summary>Out of memory.</summary>
    public const int ENOMEM = 12;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Bad address (a size past the caller's buffer).</summary>
    public const int EFAULT = 14;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>Entry exists (also: a socket is already selected).</summary>
    public const int EEXIST = 17;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>No space left (also: ctx_size_out too small).</summary>
    public const int ENOSPC = 28;
    /// <summary>Result out of range (local_port &gt; 65535).</summary>
    public const int ERANGE = 34;
    /// <summary>Resource deadlock avoided (bpf_timer_cancel from the timer's own callback).</summary>
    public const int EDEADLK = 35;
    /// <summary>No data available (an empty user ring buffer, internally).</summary>
    public const int ENODATA = 61;
    /// <summary>Link has been severed (update of a detached link).</summary>
    public const int ENOLINK = 67;
    /// <summary>File descriptor in bad state (bpf_sk_select_reuseport: a socket of another reuseport group).</summary>
    public const int EBADFD = 77;
    /// <summary>Protocol wrong type for socket.</summary>
    public const int EPROTOTYPE = 91;
    /// <summary>Protocol not available (a socket option the family lacks).</summary>
    public const int ENOPROTOOPT = 92;
    /// <summary>Protocol not supported (socket(2) with a protocol other than TCP or UDP).</summary>
    public const int EPROTONOSUPPORT = 93;
    /// <summary>Socket type not supported.</summary>
    public const int ESOCKTNOSUPPORT = 94;
    /// <summary>Operation not supported on this object.</summary>
    public const int EOPNOTSUPP = 95;
    /// <summary>Address family not supported by protocol.</summary>
    public const int EAFNOSUPPORT = 97;
    /// <summary>Address already in use.</summary>
    public const int EADDRINUSE = 98;
    /// <summary>Transport endpoint is already connected.</summary>
    public const int EISCONN = 106;
    /// <summary>Transport endpoint is not connected.</summary>
    public const int ENOTCONN = 107;
    /// <summary>Connection refused.</summary>
    public const int ECONNREFUSED = 111;
    /// <summary>The kernel-internal ENOTSUPP that map operations return to userspace.</summary>
    public const int ENOTSUPP = 524;

    /// <summary>The symbolic name of an errno value (positive or negated), e.g. <c>ENOENT</c>; <c>errno N</c> for others.</summary>
    public static string Name(long code) => Math.Abs(code) switch
    {
        0 => "0",
        EPERM => "EPERM", ENOENT => "ENOENT", E2BIG => "E2BIG", EBADF => "EBADF", EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM", EACCES => "EACCES", EFAULT => "EFAULT", EBUSY => "EBUSY", EEXIST => "EEXIST",
        EINVAL => "EINVAL", ENOSPC => "ENOSPC", ERANGE => "ERANGE", EDEADLK => "EDEADLK", ENODATA => "ENODATA", ENOLINK => "ENOLINK", EBADFD => "EBADFD", EPROTOTYPE => "EPROTOTYPE",
        ENOPROTOOPT => "ENOPROTOOPT", EPROTONOSUPPORT => "EPROTONOSUPPORT", ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        EOPNOTSUPP => "EOPNOTSUPP", EAFNOSUPPORT => "EAFNOSUPPORT", EADDRINUSE => "EADDRINUSE", EISCONN => "EISCONN",
        ENOTCONN => "ENOTCONN", ECONNREFUSED => "ECONNREFUSED", ENOTSUPP => "ENOTSUPP",
        var n => $"errno {n}",
    };
}
