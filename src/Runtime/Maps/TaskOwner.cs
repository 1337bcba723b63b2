namespace BpfJit.Runtime.Maps;

/// <summary>
/// A host thread as the owner of TASK_STORAGE values (<see cref="LocalStorageMap"/>): the kernel frees a task's local
/// storage when the task exits, and so a thread's values go when the thread ends. Each thread that gets a value has one
/// owner, made on its first value; a <see cref="ThreadStaticAttribute">thread-static</see> watcher holds it, and when the
/// thread ends the watcher becomes garbage and its finaliser frees the thread's values in every TASK_STORAGE map still
/// alive. The values refer to the owner, never to the watcher, so they do not keep it alive.
/// </summary>
internal sealed class TaskOwner
{
    [ThreadStatic] static Watcher? t_watcher;

    static readonly Lock s_mapsLock = new();
    static readonly List<WeakReference<LocalStorageMap>> s_maps = [];

    TaskOwner(int threadId) => ThreadId = threadId;

    /// <summary>The thread's id (gettid): the key its values have.</summary>
    public int ThreadId { get; }

    /// <summary>The calling thread's owner, made on first use.</summary>
    public static TaskOwner Current => (t_watcher ??= new Watcher(new TaskOwner(KernelHelpers.CurrentTask.ThreadId()))).Owner;

    /// <summary>Marks that a value now belongs to this owner (the watcher's finaliser then has something to free); returns it.</summary>
    public TaskOwner Register()
    {
        t_watcher?.Arm();
        return this;
    }

    /// <summary>Remembers a TASK_STORAGE map (weakly) so that an ended thread's values in it are freed.</summary>
    public static void Track(LocalStorageMap map)
    {
        lock (s_mapsLock)
        {
            s_maps.RemoveAll(w => !w.TryGetTarget(out _));
            s_maps.Add(new WeakReference<LocalStorageMap>(map));
        }
    }

    void Exited()
    {
        LocalStorageMap[] maps;
        lock (s_mapsLock) maps = [.. s_maps.Select(w => w.TryGetTarget(out var m) ? m : null).OfType<LocalStorageMap>()];
        foreach (var map in maps) map.TaskExited(this);
    }

    /// <summary>Lives in the thread's thread-static slot: garbage once the thread has ended, and then finalised.</summary>
    sealed class Watcher
    {
        bool _armed;

        public Watcher(TaskOwner owner)
        {
            Owner = owner;
            GC.SuppressFinalize(this);
        }

        public TaskOwner Owner { get; }

        /// <summary>A value was made: the finaliser must run (a thread that never made one costs nothing at its end).</summary>
        public void Arm()
        {
            if (_armed) return;
            _armed = true;
            GC.ReRegisterForFinalize(this);
        }

        ~Watcher()
        {
            if (!_armed) return;
            try { Owner.Exited(); }
            catch (ObjectDisposedException) { }
        }
    }
}
