"""Orthanc's error codes and the one exception tree of Obelisk.

Every failure a user can see is an :class:`ObeliskError` carrying an :class:`ErrorCode`. The code
fixes Orthanc's number (``OrthancStatus``), its description (``OrthancError``) and the default HTTP
status; the edges (HTTP, DICOM) translate it in one place each::

    ObeliskError(code, message, details, http_status=None)
     ├── BadRequest              400, malformed input
     ├── BadFileFormat           400, not DICOM / missing UIDs
     ├── UnknownResource         404, no such patient/study/series/instance
     ├── InexistentItem          404, no such metadata / attachment / job output
     ├── Unauthorized (401) / Forbidden (403) ── PermissionDenied
     └── ConfigurationError      bad settings, raised before the server starts
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Orthanc 1.10.1's error codes: value = (number, default HTTP status, description)."""

    InternalError = (-1, 500, "Internal error")
    Success = (0, 200, "Success")
    Plugin = (1, 500, "Error encountered within the plugin engine")
    NotImplemented = (2, 500, "Not implemented yet")
    ParameterOutOfRange = (3, 400, "Parameter out of range")
    NotEnoughMemory = (4, 500, "The server hosting Orthanc is running out of memory")
    BadParameterType = (5, 400, "Bad type for a parameter")
    BadSequenceOfCalls = (6, 500, "Bad sequence of calls")
    InexistentItem = (7, 404, "Accessing an inexistent item")
    BadRequest = (8, 400, "Bad request")
    NetworkProtocol = (9, 500, "Error in the network protocol")
    SystemCommand = (10, 500, "Error while calling a system command")
    Database = (11, 500, "Error with the database engine")
    UriSyntax = (12, 400, "Badly formatted URI")
    InexistentFile = (13, 404, "Inexistent file")
    CannotWriteFile = (14, 500, "Cannot write to file")
    BadFileFormat = (15, 400, "Bad file format")
    Timeout = (16, 500, "Timeout")
    UnknownResource = (17, 404, "Unknown resource")
    IncompatibleDatabaseVersion = (18, 500, "Incompatible version of the database")
    FullStorage = (19, 500, "The file storage is full")
    CorruptedFile = (20, 500, "Corrupted file (e.g. inconsistent MD5 hash)")
    InexistentTag = (21, 404, "Inexistent tag")
    ReadOnly = (22, 500, "Cannot modify a read-only data structure")
    IncompatibleImageFormat = (23, 500, "Incompatible format of the images")
    IncompatibleImageSize = (24, 500, "Incompatible size of the images")
    SharedLibrary = (25, 500, "Error while using a shared library (plugin)")
    UnknownPluginService = (26, 500, "Plugin invoking an unknown service")
    UnknownDicomTag = (27, 500, "Unknown DICOM tag")
    BadJson = (28, 400, "Cannot parse a JSON document")
    Unauthorized = (29, 401, "Bad credentials were provided to an HTTP request")
    BadFont = (30, 500, "Badly formatted font file")
    DatabasePlugin = (
        31,
        500,
        "The plugin implementing a custom database back-end does not fulfill the proper interface",
    )
    StorageAreaPlugin = (32, 500, "Error in the plugin implementing a custom storage area")
    EmptyRequest = (33, 500, "The request is empty")
    NotAcceptable = (
        34,
        406,
        "Cannot send a response which is acceptable according to the Accept HTTP header",
    )
    NullPointer = (35, 500, "Cannot handle a NULL pointer")
    DatabaseUnavailable = (
        36,
        503,
        "The database is currently not available (probably a transient situation)",
    )
    CanceledJob = (37, 500, "This job was canceled")
    BadGeometry = (38, 500, "Geometry error encountered in Stone")
    SslInitialization = (39, 500, "Cannot initialize SSL encryption, check out your certificates")
    DiscontinuedAbi = (
        40,
        500,
        "Calling a function that has been removed from the Orthanc Framework",
    )
    BadRange = (41, 416, "Incorrect range request")
    DatabaseCannotSerialize = (
        42,
        503,
        "Database could not serialize access due to concurrent update, the transaction should be retried",
    )
    Revision = (
        43,
        409,
        "A bad revision number was provided, which might indicate conflict between multiple writers",
    )
    SQLiteNotOpened = (1000, 500, "SQLite: The database is not opened")
    SQLiteAlreadyOpened = (1001, 500, "SQLite: Connection is already open")
    SQLiteCannotOpen = (1002, 500, "SQLite: Unable to open the database")
    SQLiteStatementAlreadyUsed = (
        1003,
        500,
        "SQLite: This cached statement is already being referred to",
    )
    SQLiteExecute = (1004, 500, "SQLite: Cannot execute a command")
    SQLiteRollbackWithoutTransaction = (
        1005,
        500,
        "SQLite: Rolling back a nonexistent transaction (have you called Begin()?)",
    )
    SQLiteCommitWithoutTransaction = (1006, 500, "SQLite: Committing a nonexistent transaction")
    SQLiteRegisterFunction = (1007, 500, "SQLite: Unable to register a function")
    SQLiteFlush = (1008, 500, "SQLite: Unable to flush the database")
    SQLiteCannotRun = (1009, 500, "SQLite: Cannot run a cached statement")
    SQLiteCannotStep = (1010, 500, "SQLite: Cannot step over a cached statement")
    SQLiteBindOutOfRange = (1011, 500, "SQLite: Bing a value while out of range (serious error)")
    SQLitePrepareStatement = (1012, 500, "SQLite: Cannot prepare a cached statement")
    SQLiteTransactionAlreadyStarted = (1013, 500, "SQLite: Beginning the same transaction twice")
    SQLiteTransactionCommit = (1014, 500, "SQLite: Failure when committing the transaction")
    SQLiteTransactionBegin = (1015, 500, "SQLite: Cannot start a transaction")
    DirectoryOverFile = (
        2000,
        500,
        "The directory to be created is already occupied by a regular file",
    )
    FileStorageCannotWrite = (
        2001,
        500,
        "Unable to create a subdirectory or a file in the file storage",
    )
    DirectoryExpected = (2002, 500, "The specified path does not point to a directory")
    HttpPortInUse = (2003, 500, "The TCP port of the HTTP server is privileged or already in use")
    DicomPortInUse = (2004, 500, "The TCP port of the DICOM server is privileged or already in use")
    BadHttpStatusInRest = (2005, 500, "This HTTP status is not allowed in a REST API")
    RegularFileExpected = (2006, 500, "The specified path does not point to a regular file")
    PathToExecutable = (2007, 500, "Unable to get the path to the executable")
    MakeDirectory = (2008, 500, "Cannot create a directory")
    BadApplicationEntityTitle = (
        2009,
        500,
        "An application entity title (AET) cannot be empty or be longer than 16 characters",
    )
    NoCFindHandler = (2010, 500, "No request handler factory for DICOM C-FIND SCP")
    NoCMoveHandler = (2011, 500, "No request handler factory for DICOM C-MOVE SCP")
    NoCStoreHandler = (2012, 500, "No request handler factory for DICOM C-STORE SCP")
    NoApplicationEntityFilter = (2013, 500, "No application entity filter")
    NoSopClassOrInstance = (
        2014,
        500,
        "DicomUserConnection: Unable to find the SOP class and instance",
    )
    NoPresentationContext = (
        2015,
        500,
        "DicomUserConnection: No acceptable presentation context for modality",
    )
    DicomFindUnavailable = (
        2016,
        500,
        "DicomUserConnection: The C-FIND command is not supported by the remote SCP",
    )
    DicomMoveUnavailable = (
        2017,
        500,
        "DicomUserConnection: The C-MOVE command is not supported by the remote SCP",
    )
    CannotStoreInstance = (2018, 500, "Cannot store an instance")
    CreateDicomNotString = (
        2019,
        400,
        "Only string values are supported when creating DICOM instances",
    )
    CreateDicomOverrideTag = (
        2020,
        400,
        "Trying to override a value inherited from a parent module",
    )
    CreateDicomUseContent = (
        2021,
        400,
        'Use "Content" to inject an image into a new DICOM instance',
    )
    CreateDicomNoPayload = (2022, 400, "No payload is present for one instance in the series")
    CreateDicomUseDataUriScheme = (
        2023,
        400,
        "The payload of the DICOM instance must be specified according to Data URI scheme",
    )
    CreateDicomBadParent = (
        2024,
        400,
        "Trying to attach a new DICOM instance to an inexistent resource",
    )
    CreateDicomParentIsInstance = (
        2025,
        400,
        "Trying to attach a new DICOM instance to an instance (must be a series, study or patient)",
    )
    CreateDicomParentEncoding = (2026, 500, "Unable to get the encoding of the parent resource")
    UnknownModality = (2027, 500, "Unknown modality")
    BadJobOrdering = (2028, 500, "Bad ordering of filters in a job")
    JsonToLuaTable = (2029, 500, "Cannot convert the given JSON object to a Lua table")
    CannotCreateLua = (2030, 500, "Cannot create the Lua context")
    CannotExecuteLua = (2031, 500, "Cannot execute a Lua command")
    LuaAlreadyExecuted = (
        2032,
        500,
        "Arguments cannot be pushed after the Lua function is executed",
    )
    LuaBadOutput = (2033, 500, "The Lua function does not give the expected number of outputs")
    NotLuaPredicate = (
        2034,
        500,
        "The Lua function is not a predicate (only true/false outputs allowed)",
    )
    LuaReturnsNoString = (2035, 500, "The Lua function does not return a string")
    StorageAreaAlreadyRegistered = (
        2036,
        500,
        "Another plugin has already registered a custom storage area",
    )
    DatabaseBackendAlreadyRegistered = (
        2037,
        500,
        "Another plugin has already registered a custom database back-end",
    )
    DatabaseNotInitialized = (
        2038,
        500,
        "Plugin trying to call the database during its initialization",
    )
    SslDisabled = (2039, 500, "Orthanc has been built without SSL support")
    CannotOrderSlices = (2040, 500, "Unable to order the slices of the series")
    NoWorklistHandler = (2041, 500, "No request handler factory for DICOM C-Find Modality SCP")
    AlreadyExistingTag = (2042, 500, "Cannot override the value of a tag that already exists")
    NoStorageCommitmentHandler = (
        2043,
        500,
        "No request handler factory for DICOM N-ACTION SCP (storage commitment)",
    )
    NoCGetHandler = (2044, 500, "No request handler factory for DICOM C-GET SCP")
    UnsupportedMediaType = (3000, 415, "Unsupported media type")

    @property
    def number(self) -> int:
        return int(self.value[0])

    @property
    def http_status(self) -> int:
        return int(self.value[1])

    @property
    def description(self) -> str:
        return str(self.value[2])


class ObeliskError(Exception):
    """Base of every error a client may see."""

    default_code = ErrorCode.InternalError

    def __init__(
        self,
        message: str = "",
        *,
        code: ErrorCode | None = None,
        details: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.description
        self.details = details
        self.http_status = http_status or self.code.http_status
        super().__init__(self.message if not details else f"{self.message}: {details}")


class BadRequest(ObeliskError):
    default_code = ErrorCode.BadRequest


class ParameterOutOfRange(ObeliskError):
    default_code = ErrorCode.ParameterOutOfRange


class BadJson(ObeliskError):
    default_code = ErrorCode.BadJson


class BadFileFormat(ObeliskError):
    default_code = ErrorCode.BadFileFormat


class UnknownResource(ObeliskError):
    default_code = ErrorCode.UnknownResource


class InexistentItem(ObeliskError):
    default_code = ErrorCode.InexistentItem


class InexistentTag(ObeliskError):
    default_code = ErrorCode.InexistentTag


class CorruptedFile(ObeliskError):
    default_code = ErrorCode.CorruptedFile


class FullStorage(ObeliskError):
    default_code = ErrorCode.FullStorage


class Unauthorized(ObeliskError):
    default_code = ErrorCode.Unauthorized


class Forbidden(ObeliskError):
    default_code = ErrorCode.Unauthorized

    def __init__(self, message: str = "Forbidden", **kwargs: object) -> None:
        super().__init__(message, http_status=403, **kwargs)  # type: ignore[arg-type]


class PermissionDenied(Forbidden):
    """403: remote access refused, or a principal lacks the permission a request needs."""


class NotImplementedYet(ObeliskError):
    default_code = ErrorCode.NotImplemented


class ConfigurationError(ObeliskError):
    """A setting is missing, of the wrong type or out of range; raised before serving."""

    default_code = ErrorCode.ParameterOutOfRange
