using System.Runtime.InteropServices;

namespace BpfJit.Examples.UdpEcho;

/// <summary>A TUN device opened with IFF_TUN | IFF_NO_PI: every read is one IP packet, every write sends one.</summary>
public sealed partial class TunDevice : IDisposable
{
    const int O_RDWR = 0x2, O_CLOEXEC = 0x80000;
    const uint TUNSETIFF = 0x400454ca; // _IOW('T', 202, int)
    const short IFF_TUN = 0x0001, IFF_NO_PI = 0x1000;
    const short POLLIN = 0x1;
    const int EINTR = 4, EAGAIN = 11;

    int _fd;

    TunDevice(int fd, string name)
    {
        _fd = fd;
        Name = name;
    }

    /// <summary>The interface name the kernel gave the device.</summary>
    public string Name { get; }

    /// <summary>
    /// Opens <c>/dev/net/tun</c> and creates (or attaches to) the interface <paramref name="name"/>
    /// (at most 15 bytes; <c>%d</c> lets the kernel number it). Needs CAP_NET_ADMIN.
    /// </summary>
    /// <exception cref="TunException">The device could not be opened or configured; carries the errno.</exception>
    public static unsafe TunDevice Open(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > 15 || name.Any(c => c > 0x7e || c <= ' '))
            throw new ArgumentException($"interface name '{name}': 1-15 printable ASCII characters", nameof(name));
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0) throw new TunException("open /dev/net/tun", Marshal.GetLastPInvokeError());
        // struct ifreq: char ifr_name[IFNAMSIZ = 16]; union { short ifr_flags; ... } padded to 40 bytes.
        byte* ifr = stackalloc byte[40];
        new Span<byte>(ifr, 40).Clear();
        for (int i = 0; i < name.Length; i++) ifr[i] = (byte)name[i];
        *(short*)(ifr + 16) = IFF_TUN | IFF_NO_PI;
        if (ioctl(fd, TUNSETIFF, ifr) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            close(fd);
            throw new TunException($"ioctl TUNSETIFF {name}", errno);
        }
        return new TunDevice(fd, Marshal.PtrToStringAnsi((nint)ifr) ?? name);
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for a packet and reads it into <paramref name="buffer"/>;
    /// returns its length, or 0 when none arrived in time (so a reader loop can check for shutdown).
    /// </summary>
    /// <exception cref="TunException">poll or read failed.</exception>
    public unsafe int Read(Span<byte> buffer, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        PollFd p = new() { Fd = _fd, Events = POLLIN };
        int ready = poll(&p, 1, timeoutMs);
        if (ready < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) return 0;
            throw new TunException($"poll {Name}", errno);
        }
        if (ready == 0) return 0;
        fixed (byte* b = buffer)
        {
            nint n = read(_fd, b, (nuint)buffer.Length);
            if (n >= 0) return (int)n;
            int errno = Marshal.GetLastPInvokeError();
            if (errno is EINTR or EAGAIN) return 0;
            throw new TunException($"read {Name}", errno);
        }
    }

    /// <summary>Sends one IP packet out of the device (the kernel receives it as arriving on the interface).</summary>
    /// <exception cref="TunException">write failed or was short.</exception>
    public unsafe void Write(ReadOnlySpan<byte> packet)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        fixed (byte* b = packet)
        {
            nint n = write(_fd, b, (nuint)packet.Length);
            if (n < 0) throw new TunException($"write {Name}", Marshal.GetLastPInvokeError());
            if (n != packet.Length) throw new TunException($"write {Name}: {n} of {packet.Length} bytes written", 0);
        }
    }

    /// <summary>Closes the file descriptor; a non-persistent device disappears with it.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) close(fd);
    }

    [StructLayout(LayoutKind.Sequential)]
    struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close(int fd);
}

/// <summary>A TUN system call failed.</summary>
public sealed class TunException : Exception
{
    /// <summary>Creates the exception for <paramref name="operation"/> failing with <paramref name="errno"/> (0: not a system error).</summary>
    public TunException(string operation, int errno)
        : base(errno == 0 ? operation : $"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Errno = errno;
    }

    /// <summary>The errno, or 0.</summary>
    public int Errno { get; }
}
